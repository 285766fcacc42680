"""Fixtures for the node agent tests: the fake NVML library built once and loaded into this
process (see tooling/fakenvml for why preloading works), a state file per test, and an
NVML session that is always closed."""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodeagent.nvml import Nvml
from tooling.fakenvml import STATE_ENV, FakeNvml, build, preload

_loaded: list[ctypes.CDLL] = []  # kept referenced: the library must stay loaded


@pytest.fixture(scope="session")
def fake_library() -> Path:
    return build()


@pytest.fixture
def fake(fake_library: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeNvml:
    """An empty fake node, loaded in-process; the library reads the state path from the
    environment on every call, so each test sees only its own file."""
    if not _loaded:
        _loaded.append(preload(fake_library))
    state = FakeNvml(tmp_path / "nvml.json")
    monkeypatch.setenv(STATE_ENV, str(state.path))
    return state


@pytest.fixture
def nvml(fake: FakeNvml) -> Iterator[Nvml]:
    """An NVML session (not opened: tests open it after setting up the state)."""
    session = Nvml()
    yield session
    session.close()
