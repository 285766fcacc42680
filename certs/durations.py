"""Durations and fractions as `headroom certs manage` takes them on its command line.

A duration is written as Go writes one, with days added (certificate lifetimes are counted in
days): one or more number-and-unit parts, `90d`, `12h`, `1h30m`, `10m`, `45s`, `1.5h`. A fraction
is `1/3` or `0.33`. Bad text raises `FlagError` naming the flag and the expected form. Pure.
"""

from __future__ import annotations

import re
from datetime import timedelta

UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_PART = re.compile(r"(\d+(?:\.\d+)?)([dhms])")
DURATION_FORM = "a duration such as 90d, 12h, 1h30m, 10m or 45s (units d, h, m, s)"
FRACTION_FORM = "a fraction between 0 and 1 such as 1/3 or 0.25"


class FlagError(ValueError):
    """A command-line value that cannot be used; the message names the flag."""


def parse_duration(text: str, *, flag: str) -> timedelta:
    """`1h30m` -> 90 minutes; above zero, else FlagError naming `flag`."""
    compact = text.strip()
    position, seconds = 0, 0.0
    for match in _PART.finditer(compact):
        if match.start() != position:
            break
        seconds += float(match.group(1)) * UNIT_SECONDS[match.group(2)]
        position = match.end()
    if not compact or position != len(compact):
        raise FlagError(f"{flag}: expected {DURATION_FORM} (got {text!r})")
    if seconds <= 0:
        raise FlagError(f"{flag}: expected a duration above zero (got {text!r})")
    return timedelta(seconds=seconds)


def parse_fraction(text: str, *, flag: str) -> float:
    """`1/3` or `0.33` -> the number, strictly between 0 and 1; FlagError naming `flag`."""
    numerator, slash, denominator = text.strip().partition("/")
    try:
        value = float(numerator) / float(denominator) if slash else float(numerator)
    except (ValueError, ZeroDivisionError):
        raise FlagError(f"{flag}: expected {FRACTION_FORM} (got {text!r})") from None
    if not 0 < value < 1:  # also refuses nan
        raise FlagError(f"{flag}: expected {FRACTION_FORM} (got {text!r})")
    return value


def format_duration(span: timedelta) -> str:
    """The shortest form `parse_duration` reads back: `1d2h`, `90s`, `0s` for nothing."""
    seconds = round(span.total_seconds())
    parts = []
    for unit, size in UNIT_SECONDS.items():
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"
