"""The background-loop lifecycle: start once, wake early, stop ends a wait at once and joins."""

from __future__ import annotations

import threading

from headroom.worker import Worker


def test_start_runs_the_loop_once_and_stop_ends_its_wait_and_joins() -> None:
    rounds: list[int] = []
    entered = threading.Event()

    def loop() -> None:
        entered.set()
        while not worker.stopped.wait(3600):  # only stop() ends this wait
            rounds.append(1)

    worker = Worker(loop, name="test-loop")
    assert not worker.started and not worker.alive
    worker.start()
    worker.start()  # a second start does not start a second thread
    assert entered.wait(10)
    assert worker.alive
    worker.stop(timeout_seconds=10)
    assert worker.started and not worker.alive
    assert rounds == []


def test_wake_ends_a_wait_early() -> None:
    woke = threading.Event()

    def loop() -> None:
        if worker.woken.wait(3600):
            woke.set()

    worker = Worker(loop, name="test-wake")
    worker.start()
    worker.wake()
    assert woke.wait(10)
    worker.stop(timeout_seconds=10)
    assert not worker.alive


def test_a_loop_may_stop_its_own_worker() -> None:
    def loop() -> None:
        worker.stop()  # no join of itself: that would raise

    worker = Worker(loop, name="test-self-stop")
    worker.start()
    assert worker.stopped.wait(10)
    worker.stop(timeout_seconds=10)
    assert not worker.alive
