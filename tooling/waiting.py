"""Polling with a deadline: the one loop the tooling and the tests wait with.

`poll` answers whether a check came true in time; callers say what a timeout means (an error
of their own, a failed assertion, a fallback). Errors in `ignore` count as "not yet", since the
first requests to a starting server fail.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def poll(
    check: Callable[[], bool],
    *,
    timeout_seconds: float,
    interval_seconds: float = 0.05,
    ignore: tuple[type[BaseException], ...] = (),
    give_up: Callable[[], bool] = lambda: False,
) -> bool:
    """True once `check()` is true; False at the deadline, or as soon as `give_up()` is true
    (a process that exited will never get ready)."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if give_up():
            return False
        try:
            if check():
                return True
        except ignore:
            pass
        time.sleep(interval_seconds)
    return False
