"""The scenario file's field readers: `headroom.fields` with the scenario's error, each naming the
field's path (`nodes[0].gpuMemory`) and the expected form."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from headroom import fields
from headroom.fields import FieldError
from headroom.quantity import QuantityError, parse_bytes

_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


class ScenarioError(FieldError):
    """A scenario that cannot run; `field` is the path of the offending field."""


def read_object(value: object, where: str) -> Mapping[str, Any]:
    return fields.read_mapping(value, where, expected="a mapping", error=ScenarioError)


def read_known(doc: Mapping[str, Any], where: str, keys: Sequence[str]) -> None:
    for key in doc:
        if key not in keys:
            spot = f"{where}.{key}" if where else str(key)
            raise ScenarioError(spot, f"unknown field; expected one of {', '.join(keys)}")


def read_list(doc: Mapping[str, Any], key: str, where: str, *, required: bool) -> list[Any]:
    spot = f"{where}.{key}" if where else key
    value = doc.get(key)
    if value is None and not required:
        return []
    if not isinstance(value, list) or (required and not value):
        fields.fail(
            value,
            spot,
            expected="a non-empty list" if required else "a list",
            show=None,
            error=ScenarioError,
        )
    return value


def read_name(doc: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
    spot = f"{where}.{key}" if where else key
    value = doc.get(key, default)
    if not isinstance(value, str) or len(value) > 40 or not _NAME.fullmatch(value):
        fields.fail(
            value,
            spot,
            expected="a name of lower-case letters, digits and '-' (at most 40)",
            error=ScenarioError,
        )
    return value


def read_string(doc: Mapping[str, Any], key: str, where: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value.strip():  # blank counts as empty
        fields.fail(value, f"{where}.{key}", expected="a non-empty string", error=ScenarioError)
    return value


def read_int(
    doc: Mapping[str, Any],
    key: str,
    where: str,
    *,
    minimum: int,
    maximum: int,
    default: int | None = None,
) -> int:
    return fields.read_int(
        doc.get(key, default),
        f"{where}.{key}",
        minimum=minimum,
        maximum=maximum,
        expected=f"an integer {minimum}..{maximum}",
        error=ScenarioError,
    )


def read_number(doc: Mapping[str, Any], key: str, where: str, *, default: float | None) -> float:
    value = doc.get(key, default)
    seconds = fields.read_number(
        value, f"{where}.{key}", expected="seconds, a number 0..3600", error=ScenarioError
    )
    if not 0 <= seconds <= 3600:
        fields.fail(
            value, f"{where}.{key}", expected="seconds, a number 0..3600", error=ScenarioError
        )
    return seconds


def read_bool(doc: Mapping[str, Any], key: str, where: str, *, default: bool) -> bool:
    return fields.read_bool(doc.get(key, default), f"{where}.{key}", error=ScenarioError)


def read_bytes(doc: Mapping[str, Any], key: str, where: str) -> int:
    spot = f"{where}.{key}"
    if key not in doc:
        raise ScenarioError(spot, 'required: a Kubernetes quantity of bytes such as "40Gi"')
    try:
        value = parse_bytes(doc.get(key), field=spot)
    except QuantityError as exc:
        raise ScenarioError(spot, str(exc).removeprefix(f"{spot}: ")) from exc
    if value <= 0:
        raise ScenarioError(spot, f"expected a quantity above 0 (got {doc.get(key)!r})")
    return value
