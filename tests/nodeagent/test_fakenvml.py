"""The fake library itself: built once per source (cached), and robust to a state file that is
not valid JSON (every call answers an error; nothing crashes), with JSON escapes understood."""

from __future__ import annotations

from pathlib import Path

import pytest

from nodeagent.nvml import Nvml, NvmlUnavailable
from tooling.fakenvml import LIBRARY_NAME, FakeNvml, build, device


def test_the_build_is_cached_by_source(tmp_path: Path) -> None:
    first = build(tmp_path)
    assert first.name == LIBRARY_NAME
    built_at = first.stat().st_mtime_ns
    assert build(tmp_path) == first
    assert first.stat().st_mtime_ns == built_at  # not compiled again
    assert [p.name for p in first.parent.iterdir()] == [LIBRARY_NAME]  # no temporary left


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{",
        "[]",
        '{"devices": [}',
        '{"a": 1} trailing',
        '{"a": "\\q"}',
        '{"a": tru}',
        "[" * 100 + "]" * 100,
        '{"a": "unterminated}',
        '{"a": 1e999}',
    ],
)
def test_a_state_file_that_is_not_json_is_an_error_not_a_crash(
    fake: FakeNvml, nvml: Nvml, text: str
) -> None:
    fake.path.write_text(text)
    with pytest.raises(NvmlUnavailable, match="nvmlInit failed: Unknown Error"):
        nvml.open()


def test_escapes_and_unicode_in_strings(fake: FakeNvml, nvml: Nvml) -> None:
    fake.write({"devices": [device(0, uuid='GPU-\u0041"\\/\t', name="NVIDIA \u00e9")]})
    nvml.open()
    (reading,) = nvml.read_devices()
    assert reading.uuid == 'GPU-A"\\/\t'
    assert reading.model == "NVIDIA ?"  # non-ASCII is replaced, never bad UTF-8
