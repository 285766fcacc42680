"""Cold-start-aware scale-up: scale for the load expected when new replicas will be serving.

A replica asked for now serves one cold start later (minutes for a large model). With
`spec.coldStart.anticipate: true`, the decision fits a straight line to the recent raw
recommendations (the replicas the load asked for, `trendWindowSeconds` back) and, when the load is
rising, asks for what the line reaches one cold start ahead. The cold start is
`spec.coldStart.seconds`, else the AIScaler's measured p90 (`coldstart.py`), else nothing is
anticipated. The projection only ever raises the count: a falling trend never scales down.

    coldStart: {anticipate: true, seconds: 180, trendWindowSeconds: 120}

Pure: the history and the lead are arguments.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from headroom.fields import FieldError, read_bool, read_int, read_mapping, read_number

KEYS = ("anticipate", "seconds", "trendWindowSeconds")
DEFAULT_TREND_WINDOW_SECONDS = 120
MAX_SECONDS = 3600


@dataclass(frozen=True)
class Anticipation:
    enabled: bool = False
    seconds: float | None = None  # the cold start to look ahead by; None: the measured p90
    trend_window_seconds: int = DEFAULT_TREND_WINDOW_SECONDS


def parse_anticipation(value: object, *, error: type[FieldError]) -> Anticipation:
    """`spec.coldStart`, validated; `error` is raised naming the field."""
    if value is None:
        return Anticipation()
    raw: Mapping[str, Any] = read_mapping(value, "spec.coldStart", error=error)
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise error(f"spec.coldStart.{unknown[0]}", f"unknown field (expected: {', '.join(KEYS)})")
    seconds = raw.get("seconds")
    return Anticipation(
        enabled=read_bool(raw.get("anticipate", False), "spec.coldStart.anticipate", error=error),
        seconds=None if seconds is None else _seconds(seconds, error),
        trend_window_seconds=read_int(
            raw.get("trendWindowSeconds", DEFAULT_TREND_WINDOW_SECONDS),
            "spec.coldStart.trendWindowSeconds",
            minimum=15,
            maximum=MAX_SECONDS,
            expected=f"an integer from 15 to {MAX_SECONDS}",
            error=error,
        ),
    )


def _seconds(value: object, error: type[FieldError]) -> float:
    field, expected = "spec.coldStart.seconds", f"seconds from 0 to {MAX_SECONDS}"
    seconds = read_number(value, field, above=-1, expected=expected, error=error)
    if not 0 <= seconds <= MAX_SECONDS:
        raise error(field, f"expected {expected} (got {value!r})")
    return seconds


def projected(
    samples: Sequence[tuple[float, int]],
    *,
    now_unix_seconds: float,
    window_seconds: float,
    lead_seconds: float,
) -> int | None:
    """Where the least-squares line through the recent (time, replicas) samples is `lead_seconds`
    from now, rounded up; None when there are too few samples or the trend is not rising."""
    recent = [(t, float(n)) for t, n in samples if t > now_unix_seconds - window_seconds]
    if len(recent) < 2 or lead_seconds <= 0:
        return None
    mean_t = sum(t for t, _ in recent) / len(recent)
    mean_n = sum(n for _, n in recent) / len(recent)
    spread = sum((t - mean_t) ** 2 for t, _ in recent)
    if spread == 0:
        return None
    slope = sum((t - mean_t) * (n - mean_n) for t, n in recent) / spread
    if slope <= 0:
        return None
    at_now = mean_n + slope * (now_unix_seconds - mean_t)
    return math.ceil(at_now + slope * lead_seconds - 1e-9)
