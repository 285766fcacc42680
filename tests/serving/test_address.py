"""`HOST:PORT` parsing shared by --bind and --metrics-bind."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from serving.address import split_host_port


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("10.0.0.1:8443", ("10.0.0.1", 8443)),
        ("[::1]:9410", ("::1", 9410)),
        ("localhost:0", ("localhost", 0)),
        (":80", ("", 80)),
        ("host:65535", ("host", 65535)),
    ],
)
def test_the_forms_it_reads(text: str, parsed: tuple[str, int]) -> None:
    assert split_host_port(text) == parsed


@pytest.mark.parametrize(
    "text",
    ["8443", "host:", "host:65536", "host:-1", "host:²", "[::1:8443", "::1]:80", "host:8443x"],
)
def test_what_it_refuses(text: str) -> None:
    assert split_host_port(text) is None


@given(st.text())
def test_any_text_is_read_or_refused_never_a_crash(text: str) -> None:
    parsed = split_host_port(text)
    assert parsed is None or 0 <= parsed[1] <= 65535
