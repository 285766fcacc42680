"""Quantities: the official parser's arithmetic, Headroom's rules on top (whole, non-negative)."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kubernetes.utils import parse_quantity  # the public entry point, to compare with

from headroom.quantity import QuantityError, format_bytes, parse_bytes


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20Gi", 20 * 2**30),
        ("512Mi", 512 * 2**20),
        ("1e9", 10**9),
        ("1G", 10**9),
        ("12.5Gi", int(12.5 * 2**30)),
        ("0", 0),
        ("1024", 1024),
        (4096, 4096),
        ("+1Ki", 1024),
    ],
)
def test_parses_kubernetes_quantities(text: object, expected: int) -> None:
    assert parse_bytes(text, field="f") == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("-1Gi", "must not be negative"),
        ("1.5", "not a whole number of bytes"),
        ("100m", "not a whole number of bytes"),
        ("1e-3", "not a whole number of bytes"),
        ("NaN", "not a quantity"),
        ("Infinity", "not a quantity"),
        ("20 Gi", "not a quantity"),
        (" 20Gi", "not a quantity"),
        ("20GB", "not a quantity"),
        ("1_000", "not a quantity"),
        ("", "not a quantity"),
        ("Gi", "not a quantity"),
        (True, "not a quantity"),
        (1.5, "not a quantity"),
        (None, "not a quantity"),
        ("9Ei", "larger than"),
    ],
)
def test_rejects_with_field_and_expected_form(text: object, problem: str) -> None:
    with pytest.raises(QuantityError) as info:
        parse_bytes(text, field="metadata.annotations[headroom.dev/gpu-memory]")
    message = str(info.value)
    assert message.startswith("metadata.annotations[headroom.dev/gpu-memory]: ")
    assert problem in message
    assert '"20Gi"' in message  # the expected form


@given(
    st.integers(min_value=0, max_value=2**62),
    st.sampled_from(["", "Ki", "Mi", "Gi", "k", "M", "G"]),
)
def test_agrees_with_the_official_parser(number: int, suffix: str) -> None:
    text = f"{number}{suffix}"
    official = parse_quantity(text)
    if official > 2**63 - 1:
        with pytest.raises(QuantityError):
            parse_bytes(text, field="f")
    else:
        assert parse_bytes(text, field="f") == int(official)
        assert Decimal(parse_bytes(text, field="f")) == official


@pytest.mark.parametrize(
    ("n_bytes", "text"),
    [
        (20 * 2**30, "20Gi"),
        (int(12.5 * 2**30), "12.5Gi"),
        (1023, "1023"),
        (2**20, "1Mi"),
        (-(2**30), "-1Gi"),
        (0, "0"),
    ],
)
def test_format_bytes(n_bytes: int, text: str) -> None:
    assert format_bytes(n_bytes) == text
