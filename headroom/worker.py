"""The lifecycle every background loop shares: one daemon thread from `start()` to `stop()`.

Controllers, watchers and publishers each own a `Worker` and give it the loop to run. The loop
waits on `worker.stopped` (so `stop()` ends a wait at once) and may be woken early with `wake()`.
`stop()` joins the thread for a bounded time, so a process shutting down does not return while a
round is still writing, and never hangs on one that is stuck.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class Worker:
    def __init__(self, loop: Callable[[], None], *, name: str) -> None:
        self.loop, self.name = loop, name
        self.stopped = threading.Event()
        self.woken = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def started(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        """Run the loop in a daemon thread; a second call does nothing."""
        if self._thread is None:
            self._thread = threading.Thread(target=self.loop, name=self.name, daemon=True)
            self._thread.start()

    def wake(self) -> None:
        self.woken.set()

    def stop(self, timeout_seconds: float = 5.0) -> None:
        """Ask the loop to end and wait up to `timeout_seconds` for it."""
        self.stopped.set()
        self.woken.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_seconds)
