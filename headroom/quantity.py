"""Kubernetes quantities ("20Gi", "512Mi", "1e9") as integer bytes, with errors naming the field.

The arithmetic is the official client's `kubernetes.utils.parse_quantity`. Importing it the usual
way would execute `kubernetes/__init__.py` and load the whole API client into every pure module
(and break the rule that pure modules import no client), so the parser's own file, which depends
only on `decimal`, is loaded on its own from the installed `kubernetes` distribution.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import cast

from headroom.fields import FieldError


class QuantityError(FieldError):
    """A value that is not a usable byte quantity; `field` names where it came from."""

    def __init__(self, field: str, value: object, problem: str) -> None:
        self.value = value
        super().__init__(
            field,
            f"{problem} (got {value!r}; expected a Kubernetes quantity of "
            'bytes such as "20Gi", "512Mi" or "1e9")',
        )


def _load_parser() -> Callable[[object], Decimal]:
    spec = importlib.util.find_spec("kubernetes")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the kubernetes client package is required to parse quantities")
    path = Path(next(iter(spec.submodule_search_locations))) / "utils" / "quantity.py"
    module_spec = importlib.util.spec_from_file_location("headroom._kube_quantity", path)
    if module_spec is None or module_spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module: ModuleType = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return cast(Callable[[object], Decimal], module.parse_quantity)


parse_quantity = _load_parser()

# The apiserver's grammar for a quantity (sign, digits, optional fraction, one suffix). Checked
# first because Python's Decimal also accepts "NaN", "Infinity", "1_000" and surrounding spaces.
_QUANTITY_RE = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[KMGTPE]i|[numkMGTPE])?")


_MAX_BYTES = 2**63 - 1


def parse_bytes(value: object, *, field: str) -> int:
    """Parse `value` (a quantity string or an integer) to a whole, non-negative number of bytes."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise QuantityError(field, value, "not a quantity")
    found = _bytes(str(value))
    if isinstance(found, str):
        raise QuantityError(field, value, found)
    return found


@lru_cache(maxsize=1024)
def _bytes(text: str) -> int | str:
    """The bytes `text` says, or what is wrong with it. Remembered: a pod's few quantities are
    read by filter, prioritize and bind alike, and this Decimal arithmetic was most of reading a
    pod's demand (bench/extender.py)."""
    if not _QUANTITY_RE.fullmatch(text):
        return "not a quantity"
    try:
        number = parse_quantity(text)
    except ValueError:
        return "not a quantity"
    if number < 0:
        return "must not be negative"
    if number > _MAX_BYTES:
        return "is larger than a Kubernetes quantity can be (2^63-1)"
    if number != number.to_integral_value():
        return "is not a whole number of bytes"
    return int(number)


_BINARY_UNITS = (
    ("Ei", 2**60),
    ("Pi", 2**50),
    ("Ti", 2**40),
    ("Gi", 2**30),
    ("Mi", 2**20),
    ("Ki", 2**10),
)


def format_bytes(n_bytes: int) -> str:
    """A short human form for messages: 21474836480 -> "20Gi", 13421772800 -> "12.5Gi"."""
    sign = "-" if n_bytes < 0 else ""
    magnitude = abs(n_bytes)
    for suffix, unit in _BINARY_UNITS:
        if magnitude >= unit:
            text = f"{magnitude / unit:.1f}".removesuffix(".0")
            return f"{sign}{text}{suffix}"
    return f"{sign}{magnitude}"
