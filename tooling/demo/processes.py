"""The demo's child processes, started so that none outlives it.

Each child runs in its own session (so its whole process group, gunicorn's workers included, can
be signalled at once) and with the kernel's parent-death signal set, so even a `kill -9` of the
demo takes its children along. `Supervisor.stop_all()` stops them newest first: SIGTERM to the
group, then SIGKILL after a grace period. `interruptible()` turns SIGTERM into the same
KeyboardInterrupt that Ctrl-C raises, so one `finally` cleans up after both.

PR_SET_PDEATHSIG fires when the *thread* that forked the child ends, so children are started from
the main thread only.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType

from tooling.process import Process, die_with_parent


class Supervisor:
    """Starts children with logs in `log_dir` and stops every one of them."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.children: list[Process] = []

    def start(
        self, name: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None
    ) -> Process:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("ab") as log:
            popen = subprocess.Popen(
                list(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(env) if env is not None else None,
                start_new_session=True,
                preexec_fn=die_with_parent,  # noqa: PLW1509 - started from the main thread
            )
        child = Process(name, popen, log_path, own_group=True)
        self.children.append(child)
        return child

    def stop_all(self, *, grace_seconds: float = 10.0) -> None:
        """Stop every child, newest first; SIGTERM all at once so the graces overlap."""
        for child in reversed(self.children):
            child.signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_seconds
        for child in reversed(self.children):
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.popen.wait(max(0.1, deadline - time.monotonic()))
        for child in reversed(self.children):
            child.stop(timeout_seconds=0)
        self.children.clear()

    def dead(self) -> list[Process]:
        return [c for c in self.children if not c.alive()]


class Interrupted(KeyboardInterrupt):
    """SIGTERM, raised where the main thread is, like Ctrl-C's KeyboardInterrupt."""


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """While inside, SIGTERM raises Interrupted in the main thread (SIGINT already raises
    KeyboardInterrupt); the previous handlers come back on the way out."""

    def raise_interrupted(signum: int, frame: FrameType | None) -> None:
        raise Interrupted(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, raise_interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """While cleaning up, a second Ctrl-C or SIGTERM must not cut the cleanup short."""
    handlers = {
        signum: signal.signal(signum, signal.SIG_IGN) for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
