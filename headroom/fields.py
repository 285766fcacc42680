"""Reading JSON-like input field by field: the one `FieldError` and the one typed reader.

Every parser in Headroom (GPUNode reports, pod demand, AIScaler specs, webhook profiles and
reviews, the scheduler's extender requests) takes untrusted JSON or YAML and must say which field
is wrong and what form it expected. They all raise a `FieldError` (or a subclass that keeps their
own name importable) carrying `.field` (the dotted path, e.g. `spec.metrics[0].target`) and
`.message`; `str(error)` is `"<field>: <message>"`.

The readers check one value each and return it typed. Their wording is the parsers' shared
vocabulary ("expected an integer >= 0 (got -1)"); `expected=` and `show=` let a parser keep the
exact words its users and tests already know, and `error=` the exception class its callers catch.
Pure: no client imports.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

# How a wrong value is shown after "got": its repr, its type name, or a phrase; None omits it.
Show = Callable[[object], str] | None
# The exception to raise: FieldError or a subclass built as (field, message).
ErrorType = Callable[[str, str], "FieldError"]


class FieldError(ValueError):
    """A field of some input that is not what it must be.

    `text` replaces the usual `"<field>: <message>"` for the few messages that read otherwise.
    """

    def __init__(self, field: str, message: str, *, text: str | None = None) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}" if text is None else text)


def type_name(value: object) -> str:
    """`list`, `str`, `NoneType`: the Python name of the value's type."""
    return type(value).__name__


_KIND_PHRASES: Mapping[type, str] = {
    dict: "a mapping",
    list: "a list",
    str: "a string",
    bool: "a boolean",
    int: "a number",
    float: "a number",
    type(None): "nothing",
}


def kind_phrase(value: object) -> str:
    """`a mapping`, `a list`, `nothing`: the value's kind in the words of a YAML file's reader."""
    return _KIND_PHRASES.get(type(value), type(value).__name__)


def child(where: str, key: str | int) -> str:
    """The path of a member: `child("spec", "x")` is `spec.x`, `child("items", 0)` `items[0]`."""
    return f"{where}[{key}]" if isinstance(key, int) else f"{where}.{key}"


def fail(
    value: object, field: str, *, expected: str, show: Show = repr, error: ErrorType = FieldError
) -> NoReturn:
    """Raise `error` naming `field`: "expected <expected> (got <shown value>)"."""
    got = "" if show is None else f" (got {show(value)})"
    raise error(field, f"expected {expected}{got}")


def read_mapping(
    value: object,
    field: str,
    *,
    expected: str = "an object",
    show: Show = type_name,
    error: ErrorType = FieldError,
) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        fail(value, field, expected=expected, show=show, error=error)
    return value


def read_optional_mapping(
    value: object,
    field: str,
    *,
    expected: str = "an object",
    show: Show = type_name,
    error: ErrorType = FieldError,
) -> Mapping[str, Any]:
    """Absent (None) reads as the empty object."""
    if value is None:
        return {}
    return read_mapping(value, field, expected=expected, show=show, error=error)


def read_list(
    value: object,
    field: str,
    *,
    expected: str = "a list",
    show: Show = type_name,
    error: ErrorType = FieldError,
) -> list[Any]:
    if not isinstance(value, list):
        fail(value, field, expected=expected, show=show, error=error)
    return value


def read_optional_list(
    value: object,
    field: str,
    *,
    expected: str = "a list",
    show: Show = type_name,
    error: ErrorType = FieldError,
) -> list[Any]:
    """Absent (None) reads as the empty list."""
    if value is None:
        return []
    return read_list(value, field, expected=expected, show=show, error=error)


def read_str(
    value: object,
    field: str,
    *,
    nonempty: bool = False,
    expected: str | None = None,
    show: Show = repr,
    error: ErrorType = FieldError,
) -> str:
    if not isinstance(value, str) or (nonempty and not value):
        wanted = expected or ("a non-empty string" if nonempty else "a string")
        fail(value, field, expected=wanted, show=show, error=error)
    return value


def read_int(
    value: object,
    field: str,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    expected: str | None = None,
    show: Show = repr,
    error: ErrorType = FieldError,
) -> int:
    """A whole number (a JSON `true` is not one) within [minimum, maximum]."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or (minimum is not None and value < minimum)
        or (maximum is not None and value > maximum)
    ):
        wanted = expected or ("an integer" if minimum is None else f"an integer >= {minimum}")
        fail(value, field, expected=wanted, show=show, error=error)
    return value


def read_number(
    value: object,
    field: str,
    *,
    above: float | None = None,
    expected: str | None = None,
    show: Show = repr,
    error: ErrorType = FieldError,
) -> float:
    """A finite number when `above` is given (and then more than it), any number otherwise."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (above is not None and not (math.isfinite(value) and value > above))
    ):
        wanted = expected or ("a number" if above is None else f"a number > {above:g}")
        fail(value, field, expected=wanted, show=show, error=error)
    return float(value)


def read_bool(
    value: object,
    field: str,
    *,
    expected: str = "true or false",
    show: Show = repr,
    error: ErrorType = FieldError,
) -> bool:
    if not isinstance(value, bool):
        fail(value, field, expected=expected, show=show, error=error)
    return value


def read_optional_str(value: object, field: str, *, error: ErrorType = FieldError) -> str | None:
    return None if value is None else read_str(value, field, error=error)


def read_optional_int(
    value: object, field: str, *, minimum: int | None = None, error: ErrorType = FieldError
) -> int | None:
    return None if value is None else read_int(value, field, minimum=minimum, error=error)


def read_optional_number(
    value: object, field: str, *, error: ErrorType = FieldError
) -> float | None:
    return None if value is None else read_number(value, field, error=error)


def read_optional_bool(value: object, field: str, *, error: ErrorType = FieldError) -> bool | None:
    return None if value is None else read_bool(value, field, error=error)


_MISSING: Any = object()


class FieldReader:
    """The readers applied to the members of one JSON object, errors naming `where.key`.

    A key that is absent takes `default`; absent without a default is "required". A key present
    with null is read as null (a type error unless the reader is an optional one).
    """

    def __init__(
        self, raw: Mapping[str, Any], where: str, *, error: ErrorType = FieldError
    ) -> None:
        self.raw = raw
        self.where = where
        self.error = error

    def path(self, key: str) -> str:
        return child(self.where, key)

    def get(self, key: str, default: object = _MISSING) -> object:
        value = self.raw.get(key, default)
        if value is _MISSING:
            raise self.error(self.path(key), "required")
        return value

    def string(self, key: str, *, default: object = _MISSING) -> str:
        return read_str(self.get(key, default), self.path(key), error=self.error)

    def integer(self, key: str, *, minimum: int, default: object = _MISSING) -> int:
        return read_int(self.get(key, default), self.path(key), minimum=minimum, error=self.error)

    def boolean(self, key: str, *, default: object = _MISSING) -> bool:
        return read_bool(self.get(key, default), self.path(key), error=self.error)

    def list(self, key: str, *, default: object = _MISSING, show: Show = None) -> list[Any]:
        return read_list(self.get(key, default), self.path(key), show=show, error=self.error)

    def optional_number(self, key: str) -> float | None:
        return read_optional_number(self.raw.get(key), self.path(key), error=self.error)

    def optional_boolean(self, key: str) -> bool | None:
        return read_optional_bool(self.raw.get(key), self.path(key), error=self.error)
