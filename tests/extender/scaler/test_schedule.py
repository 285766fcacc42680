"""Scheduled capacity: windows validated naming the field, open between a start and the next end
in their time zone, one cold start early, the highest minimum winning."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from extender.scaler.schedule import Window, open_window, parse_schedule
from extender.scaler.spec import SpecError, parse_spec

PARIS = ZoneInfo("Europe/Paris")
BUSINESS = Window("business", "0 8 * * 1-5", "0 20 * * 1-5", "Europe/Paris", 4)
NIGHT = Window("night", "0 22 * * *", "0 6 * * *", "UTC", 2)


def at(text: str, zone: ZoneInfo = PARIS) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()


@pytest.mark.parametrize(
    ("when", "lead_seconds", "open_"),
    [
        ("2026-12-07 09:00", 0, True),  # a Monday, in business hours
        ("2026-12-07 07:59", 0, False),
        ("2026-12-07 07:57", 180, True),  # opens one 3-minute cold start early
        ("2026-12-07 07:56", 180, False),
        ("2026-12-07 19:59", 0, True),
        ("2026-12-07 20:00", 0, False),
        ("2026-12-05 12:00", 0, False),  # a Saturday
    ],
)
def test_a_window_is_open_from_its_start_less_the_lead_to_its_end(
    when: str, lead_seconds: float, open_: bool
) -> None:
    found = open_window([BUSINESS], now_unix_seconds=at(when), lead_seconds=lead_seconds)
    assert (found is BUSINESS) is open_


def test_a_window_over_midnight_and_the_highest_minimum_wins() -> None:
    utc = ZoneInfo("UTC")
    assert open_window([NIGHT], now_unix_seconds=at("2026-12-08 03:00", utc), lead_seconds=0)
    assert not open_window([NIGHT], now_unix_seconds=at("2026-12-08 07:00", utc), lead_seconds=0)
    both = Window("late", "0 18 * * *", "0 23 * * *", "Europe/Paris", 6)
    found = open_window([BUSINESS, both], now_unix_seconds=at("2026-12-07 19:00"), lead_seconds=0)
    assert found is both


def spec_with(schedule: Any) -> dict[str, Any]:
    return {
        "spec": {
            "deploymentName": "llm",
            "metricType": "queue_depth",
            "targetValue": 10,
            "maxReplicas": 8,
            "schedule": schedule,
        }
    }


def test_the_spec_carries_its_windows() -> None:
    window = {"start": "0 8 * * 1-5", "end": "0 20 * * 1-5", "minReplicas": 4}
    parsed = parse_spec(spec_with([{**window, "name": "day", "timeZone": "Europe/Paris"}]))
    assert parsed.schedule == (Window("day", "0 8 * * 1-5", "0 20 * * 1-5", "Europe/Paris", 4),)
    assert parse_spec(spec_with([window])).schedule[0].time_zone == "UTC"


@pytest.mark.parametrize(
    ("schedule", "field", "words"),
    [
        ([{"start": "0 25 * * *", "end": "0 20 * * *", "minReplicas": 1}], "[0].start", "cron"),
        ([{"start": "0 8 * * *", "end": "bogus", "minReplicas": 1}], "[0].end", "5 fields"),
        ([{"start": "0 0 8 * * *", "end": "0 9 * * *", "minReplicas": 1}], "[0].start", "cron"),
        (
            [{"start": "0 8 * * *", "end": "0 9 * * *", "minReplicas": 1, "timeZone": "Mars/Base"}],
            "[0].timeZone",
            "IANA time zone",
        ),
        ([{"start": "0 8 * * *", "end": "0 9 * * *", "minReplicas": 9}], "[0].minReplicas", "8"),
        ([{"start": "0 8 * * *", "end": "0 9 * * *"}], "[0].minReplicas", "integer"),
        ([{"start": "0 8 * * *", "end": "0 9 * * *", "minReplicas": 1, "min": 2}], "[0].min", ""),
        ({"start": "0 8 * * *"}, "", "list"),
    ],
)
def test_a_bad_window_is_refused_naming_the_field(schedule: Any, field: str, words: str) -> None:
    with pytest.raises(SpecError) as raised:
        parse_spec(spec_with(schedule))
    assert raised.value.field == f"spec.schedule{field}"
    assert words in str(raised.value)


def test_no_schedule_is_no_window() -> None:
    assert parse_schedule(None, max_replicas=3, error=SpecError) == ()
    assert open_window((), now_unix_seconds=0, lead_seconds=0) is None
