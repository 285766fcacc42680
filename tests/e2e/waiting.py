"""Polling with a deadline, the one way the e2e tests wait for the cluster."""

from __future__ import annotations

from collections.abc import Callable

from kubeapi.client import ApiError
from tests.waiting import wait_for


def eventually(
    check: Callable[[], bool],
    *,
    timeout_seconds: float = 30.0,
    what: str = "condition",
    interval_seconds: float = 0.1,
) -> None:
    """Return once `check()` is true; fail after `timeout_seconds`. An API error counts as
    "not yet" (the first requests after an API server restart may fail)."""
    wait_for(
        check,
        timeout_seconds=timeout_seconds,
        interval_seconds=interval_seconds,
        message=what,
        ignore=(ApiError,),
    )
