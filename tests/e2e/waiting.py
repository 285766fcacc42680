"""Polling with a deadline, the one way the e2e tests wait for the cluster."""

from __future__ import annotations

import time
from collections.abc import Callable

from kubeapi.client import ApiError


def eventually(check: Callable[[], bool], *, timeout_seconds: float = 30.0,
               what: str = "condition", interval_seconds: float = 0.1) -> None:
    """Return once `check()` is true; fail after `timeout_seconds`. An API error counts as
    "not yet" (the first requests after an API server restart may fail)."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except ApiError:
            pass
        time.sleep(interval_seconds)
    raise AssertionError(f"{what} not reached within {timeout_seconds:.0f}s")
