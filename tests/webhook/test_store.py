"""The profiles file on disk: reloads on change, including a ConfigMap volume's symlink swap;
a bad new file keeps the last good profiles and is reported once."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest

from tests.waiting import poll
from webhook.store import ProfileStore

V1 = "profiles:\n  default: {maxGpus: 1}\n"
V2 = "profiles:\n  default: {maxGpus: 2}\n"
BAD = "profiles:\n  default: {maxGpus: none}\n"


def configmap_volume(root: Path, text: str) -> Path:
    """The layout the kubelet writes: profiles.yaml -> ..data/profiles.yaml, ..data -> ..TS."""
    root.mkdir(exist_ok=True)
    swap_configmap(root, text, "..2024_01_01_00_00_00.1")
    (root / "profiles.yaml").symlink_to("..data/profiles.yaml")
    return root / "profiles.yaml"


def swap_configmap(root: Path, text: str, stamp: str) -> None:
    (root / stamp).mkdir()
    (root / stamp / "profiles.yaml").write_text(text)
    tmp = root / "..data_tmp"
    tmp.symlink_to(stamp)
    os.replace(tmp, root / "..data")  # the atomic swap the kubelet does


def max_gpus(store: ProfileStore) -> int | None:
    return store.current.profiles["default"].max_gpus


def test_a_configmap_symlink_swap_is_picked_up(tmp_path: Path) -> None:
    path = configmap_volume(tmp_path / "vol", V1)
    results: list[tuple[bool, str]] = []
    store = ProfileStore(path, on_reload=lambda ok, msg: results.append((ok, msg)))
    assert max_gpus(store) == 1
    assert store.check() is None
    swap_configmap(tmp_path / "vol", V2, "..2024_01_01_00_01_00.2")
    assert store.check() is True
    assert max_gpus(store) == 2
    assert results == [(True, "")]


def test_an_in_place_rewrite_is_picked_up(tmp_path: Path) -> None:
    path = tmp_path / "profiles.yaml"
    path.write_text(V1)
    store = ProfileStore(path)
    path.write_text(V2 + "# a longer file\n")
    assert store.check() is True and max_gpus(store) == 2


def test_a_bad_file_keeps_the_last_good_profiles_and_is_reported_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = configmap_volume(tmp_path / "vol", V1)
    results: list[tuple[bool, str]] = []
    store = ProfileStore(path, on_reload=lambda ok, msg: results.append((ok, msg)))
    good = store.current
    swap_configmap(tmp_path / "vol", BAD, "..2024_01_01_00_01_00.2")
    with caplog.at_level(logging.ERROR, logger="webhook.profiles"):
        assert store.check() is False
        assert store.check() is None  # the same bad file is not reported again
    assert store.current is good and store.valid is False
    assert results == [
        (
            False,
            "profiles.default.maxGpus: expected a whole number of GPUs, at "
            "least 1, or null for no limit (got 'none')",
        )
    ]
    assert [r.message for r in caplog.records] == [
        "profiles file rejected; still serving the last good profiles"
    ]
    assert "profiles.default.maxGpus" in caplog.records[0].fields["error"]  # type: ignore[attr-defined]
    swap_configmap(tmp_path / "vol", V2, "..2024_01_01_00_02_00.3")
    assert store.check() is True and max_gpus(store) == 2 and store.valid is True


def test_a_vanished_file_keeps_the_profiles(tmp_path: Path) -> None:
    path = tmp_path / "profiles.yaml"
    path.write_text(V1)
    store = ProfileStore(path)
    path.unlink()
    assert store.check() is False
    assert max_gpus(store) == 1


def test_touching_the_file_without_changing_it_is_no_reload(tmp_path: Path) -> None:
    path = tmp_path / "profiles.yaml"
    path.write_text(V1)
    results: list[tuple[bool, str]] = []
    store = ProfileStore(path, on_reload=lambda ok, msg: results.append((ok, msg)))
    os.utime(path, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    assert store.check() is None
    assert results == []


def test_the_watcher_thread_reloads_within_its_poll_interval(tmp_path: Path) -> None:
    path = configmap_volume(tmp_path / "vol", V1)
    store = ProfileStore(path, poll_seconds=0.05)
    store.start()
    try:
        swap_configmap(tmp_path / "vol", V2, "..2024_01_01_00_01_00.2")
        poll(lambda: max_gpus(store) == 2, timeout_seconds=10, interval_seconds=0.02)
        assert max_gpus(store) == 2
    finally:
        store.stop()


def test_a_bad_file_at_start_is_fatal(tmp_path: Path) -> None:
    path = tmp_path / "profiles.yaml"
    path.write_text(BAD)
    with pytest.raises(ValueError, match=r"profiles\.default\.maxGpus"):
        ProfileStore(path)
