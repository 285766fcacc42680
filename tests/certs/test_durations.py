"""Tests for `certs.durations`: the forms `headroom certs manage` accepts, and its refusals."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from certs.durations import FlagError, format_duration, parse_duration, parse_fraction


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90d", timedelta(days=90)),
        ("12h", timedelta(hours=12)),
        ("1h30m", timedelta(minutes=90)),
        ("10m", timedelta(minutes=10)),
        ("45s", timedelta(seconds=45)),
        ("1.5h", timedelta(minutes=90)),
        ("1d12h", timedelta(hours=36)),
        (" 2m ", timedelta(minutes=2)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text, flag="--ca-validity") == expected


@pytest.mark.parametrize("text", ["", "90", "d", "5 m", "1y", "-5m", "1h-30m", "m5", "1e3s", "10M"])
def test_a_bad_duration_names_the_flag_and_the_form(text: str) -> None:
    with pytest.raises(FlagError) as info:
        parse_duration(text, flag="--serving-validity")
    assert str(info.value) == (
        "--serving-validity: expected a duration such as 90d, 12h, 1h30m, 10m or 45s "
        f"(units d, h, m, s) (got {text!r})"
    )


def test_a_zero_duration_is_refused() -> None:
    with pytest.raises(FlagError, match=r"^--resync: expected a duration above zero \(got '0s'\)"):
        parse_duration("0s", flag="--resync")


@given(st.integers(1, 10**8))
def test_format_reads_back(seconds: int) -> None:
    span = timedelta(seconds=seconds)
    assert parse_duration(format_duration(span), flag="--x") == span


@pytest.mark.parametrize(("text", "expected"), [("1/3", 1 / 3), ("0.25", 0.25), ("2/3", 2 / 3)])
def test_fractions(text: str, expected: float) -> None:
    assert parse_fraction(text, flag="--renew-before") == pytest.approx(expected)


@pytest.mark.parametrize("text", ["0", "1", "3/2", "1/0", "x", "", "nan", "-0.5", "1/3/4"])
def test_a_bad_fraction_names_the_flag(text: str) -> None:
    with pytest.raises(FlagError) as info:
        parse_fraction(text, flag="--renew-before")
    assert str(info.value) == (
        f"--renew-before: expected a fraction between 0 and 1 such as 1/3 or 0.25 (got {text!r})"
    )
