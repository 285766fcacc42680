"""Scheduled capacity: cron windows that raise an AIScaler's minReplicas.

`spec.schedule` lists windows, each opened by the cron expression `start` and closed by the next
time `end` matches, in `timeZone` (IANA, default UTC), holding at least `minReplicas`:

    schedule:
      - {name: business-hours, start: "0 8 * * 1-5", end: "0 20 * * 1-5",
         timeZone: Europe/Paris, minReplicas: 4}

A window opens one cold start early (the AIScaler's measured p90, `coldstart.py`), so that its
replicas are serving when it opens: this replaces a CronJob that warms the model by calling it.
Windows that overlap take the highest minimum. Pure: the time and the lead are arguments.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from headroom.fields import FieldError, read_int, read_list, read_mapping, read_str

CRON_FIELDS = 5  # minute hour day-of-month month day-of-week, as a CronJob's schedule
KEYS = ("name", "start", "end", "timeZone", "minReplicas")


@dataclass(frozen=True)
class Window:
    name: str
    start: str  # cron: when it opens
    end: str  # cron: the first match after an opening closes it
    time_zone: str
    min_replicas: int


def parse_schedule(
    value: object, *, max_replicas: int, error: type[FieldError]
) -> tuple[Window, ...]:
    """`spec.schedule`, validated; `error` is raised naming the field."""
    if value is None:
        return ()
    windows = []
    for index, raw in enumerate(read_list(value, "spec.schedule", error=error)):
        where = f"spec.schedule[{index}]"
        entry = read_mapping(raw, where, error=error)
        unknown = sorted(set(entry) - set(KEYS))
        if unknown:
            raise error(f"{where}.{unknown[0]}", f"unknown field (expected: {', '.join(KEYS)})")
        windows.append(
            Window(
                name=read_str(entry.get("name", f"window-{index}"), f"{where}.name", error=error),
                start=_cron(entry.get("start"), f"{where}.start", error),
                end=_cron(entry.get("end"), f"{where}.end", error),
                time_zone=_zone(entry.get("timeZone", "UTC"), f"{where}.timeZone", error),
                min_replicas=read_int(
                    entry.get("minReplicas"),
                    f"{where}.minReplicas",
                    minimum=0,
                    maximum=max_replicas,
                    expected=f"an integer from 0 to spec.maxReplicas ({max_replicas})",
                    error=error,
                ),
            )
        )
    return tuple(windows)


def _cron(value: object, field: str, error: type[FieldError]) -> str:
    text = read_str(value, field, nonempty=True, error=error)
    if len(text.split()) != CRON_FIELDS or not croniter.is_valid(text):
        raise error(
            field,
            f'expected a cron expression of 5 fields such as "0 8 * * 1-5" (got {text!r})',
        )
    return text


def _zone(value: object, field: str, error: type[FieldError]) -> str:
    text = read_str(value, field, nonempty=True, error=error)
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise error(
            field, f"expected an IANA time zone such as Europe/Paris or UTC (got {text!r})"
        ) from exc
    return text


def open_window(
    windows: Sequence[Window], *, now_unix_seconds: float, lead_seconds: float
) -> Window | None:
    """The window holding the highest minimum now, counting each as open `lead_seconds` before
    its start; None when none is."""
    best: Window | None = None
    for window in windows:
        if _is_open(window, now_unix_seconds, lead_seconds) and (
            best is None or window.min_replicas > best.min_replicas
        ):
            best = window
    return best


def _is_open(window: Window, now_unix_seconds: float, lead_seconds: float) -> bool:
    zone = ZoneInfo(window.time_zone)
    # The latest opening at or before now + lead (croniter's previous match is strictly before
    # the time it starts from, hence the second added), then the first closing after it.
    ahead = datetime.fromtimestamp(now_unix_seconds + lead_seconds, zone) + timedelta(seconds=1)
    opened = croniter(window.start, ahead).get_prev(datetime)
    closes = croniter(window.end, opened).get_next(datetime)
    return now_unix_seconds < closes.astimezone(UTC).timestamp()


def schedule_status(window: Window | None, *, lead_seconds: float) -> Mapping[str, Any] | None:
    if window is None:
        return None
    return {
        "window": window.name,
        "minReplicas": window.min_replicas,
        "leadSeconds": round(lead_seconds, 1),
    }
