"""Waiting in tests: `wait_for` fails the test when a condition is not reached in time.

Built on `tooling.waiting.poll`, the one polling loop; tests that want the yes/no answer (to
assert something else after it) call `poll` directly.
"""

from __future__ import annotations

from collections.abc import Callable

from tooling.waiting import poll

__all__ = ["poll", "wait_for"]


def wait_for(
    predicate: Callable[[], bool],
    *,
    timeout_seconds: float,
    interval_seconds: float = 0.05,
    message: str = "condition",
    ignore: tuple[type[BaseException], ...] = (),
) -> None:
    """Return once `predicate()` is true; AssertionError naming `message` after the timeout."""
    if not poll(
        predicate, timeout_seconds=timeout_seconds, interval_seconds=interval_seconds, ignore=ignore
    ):
        raise AssertionError(f"{message}: not reached within {timeout_seconds:g}s")
