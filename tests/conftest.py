"""Suite-wide settings.

- hypothesis runs without per-example deadlines (a loaded 2-core CI machine makes timings noisy;
  speed is measured in bench/, not here);
- every test gets a timeout by kind, unless it sets its own: a unit test that hangs fails within
  a minute instead of holding the run; tests marked `server` (they start a server process) get
  three, and e2e tests (a real control plane) ten.
"""

from __future__ import annotations

import pytest
from hypothesis import settings

settings.register_profile("headroom", deadline=None)
settings.load_profile("headroom")

UNIT_TIMEOUT_SECONDS = 60
SERVER_TIMEOUT_SECONDS = 180
E2E_TIMEOUT_SECONDS = 600


@pytest.hookimpl(trylast=True)  # after the conftests that mark their tests e2e
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("timeout"):
            continue
        seconds = (
            E2E_TIMEOUT_SECONDS
            if item.get_closest_marker("e2e")
            else SERVER_TIMEOUT_SECONDS
            if item.get_closest_marker("server")
            else UNIT_TIMEOUT_SECONDS
        )
        item.add_marker(pytest.mark.timeout(seconds))
