"""The publisher's schedule (what is written when, retries with backoff, always the newest report)
and the GPUNode object it creates. Its API calls run against a real kube-apiserver in
tests/e2e/test_nodeagent.py; here the write is a recording function."""

from __future__ import annotations

import random
import threading
from dataclasses import replace

import pytest

from headroom import names
from headroom.backoff import Backoff
from headroom.report import GpuState, NodeReport
from kubeapi.client import ApiError
from nodeagent.publisher import Publisher
from nodeagent.wire import gpunode_object, is_owned_by
from tests.waiting import poll

GIB = 2**30
NOW = 1_700_000_000.0
GPU = GpuState(index=0, uuid="GPU-0", model="L4", total_bytes=24 * GIB, used_bytes=GIB)


def report(at: float, *, used: int = GIB) -> NodeReport:
    return NodeReport(
        node_name="n1", reported_at_unix_seconds=at, gpus=(replace(GPU, used_bytes=used),)
    )


class Recorder:
    def __init__(self) -> None:
        self.written: list[NodeReport] = []
        self.fail_with: Exception | None = None

    def __call__(self, r: NodeReport) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.written.append(r)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make(recorder: Recorder, clock: Clock) -> Publisher:
    return Publisher(
        recorder,
        deadband_bytes=256 * 2**20,
        heartbeat_seconds=30,
        interval_seconds=5,
        clock=clock,
        backoff=Backoff(initial_seconds=1, max_seconds=16, rng=random.Random(7)),
    )


def test_writes_the_first_report_then_changes_and_heartbeats(clock: Clock) -> None:
    recorder = Recorder()
    publisher = make(recorder, clock)
    assert publisher.step() is None  # nothing offered yet
    publisher.offer(report(NOW))
    assert publisher.step() == "first report"
    for i in range(1, 6):  # 25s of unchanged samples: nothing to write
        publisher.offer(report(NOW + 5 * i))
        assert publisher.step() is None
    publisher.offer(report(NOW + 30))
    assert publisher.step() == "heartbeat"
    publisher.offer(report(NOW + 35, used=3 * GIB))
    assert publisher.step() == "GPU 0: used memory changed by 2Gi"
    assert [r.reported_at_unix_seconds for r in recorder.written] == [NOW, NOW + 30, NOW + 35]
    assert publisher.stats.publishes == 3
    assert publisher.stats.last_published == recorder.written[-1]


def test_a_failed_write_is_retried_after_a_backoff_with_the_newest_report(clock: Clock) -> None:
    recorder = Recorder()
    publisher = make(recorder, clock)
    recorder.fail_with = ApiError(0, "cannot reach the API server")
    publisher.offer(report(NOW))
    assert publisher.step() is None
    delays = []
    for attempt in range(6):
        retry_at = publisher.retry_at
        assert retry_at is not None
        delays.append(retry_at - clock.now)
        publisher.offer(report(NOW + attempt + 1))
        clock.now = retry_at - 0.01
        assert publisher.step() is None  # not before the backoff ends
        assert publisher.stats.errors == attempt + 1
        clock.now = retry_at
        assert publisher.step() is None  # tried, failed again
        assert publisher.stats.errors == attempt + 2
    assert publisher.stats.errors == 7
    assert "cannot reach the API server" in publisher.stats.last_error
    assert all(0 <= d <= 16 for d in delays)
    assert max(delays) > 1  # grows past the first ceiling (full jitter: 0..1, 0..2, 0..4, ...)
    recorder.fail_with = None
    clock.now = publisher.retry_at or 0.0
    newest = report(NOW + 100)
    publisher.offer(newest)
    assert publisher.step() == "retry after an error"
    assert recorder.written == [newest]
    assert publisher.retry_at is None
    assert publisher.backoff.failures == 0
    assert publisher.step() is None  # back to the normal schedule


def test_the_thread_writes_what_is_offered_and_stops(clock: Clock) -> None:
    recorder = Recorder()
    publisher = Publisher(recorder, deadband_bytes=0, heartbeat_seconds=30, interval_seconds=1)
    publisher.start()
    try:
        publisher.offer(report(NOW))
        publisher.offer(report(NOW + 1, used=2 * GIB))
        poll(
            lambda: bool(recorder.written) and recorder.written[-1].gpus[0].used_bytes == 2 * GIB,
            timeout_seconds=10,
            interval_seconds=0.01,
        )
        assert recorder.written[-1].gpus[0].used_bytes == 2 * GIB
    finally:
        publisher.stop(timeout_seconds=5)
    assert publisher.worker.started and not publisher.worker.alive
    assert not any(t.name == "publisher" for t in threading.enumerate())


def test_the_thread_survives_any_write_failure(clock: Clock) -> None:
    recorder = Recorder()
    recorder.fail_with = RuntimeError("unexpected")
    publisher = Publisher(
        recorder,
        deadband_bytes=0,
        heartbeat_seconds=30,
        interval_seconds=1,
        backoff=Backoff(initial_seconds=0.01, max_seconds=0.02),
    )
    publisher.start()
    try:
        publisher.offer(report(NOW))
        poll(lambda: publisher.stats.errors >= 3, timeout_seconds=10, interval_seconds=0.01)
        assert publisher.stats.errors >= 3  # it kept retrying on its own
        recorder.fail_with = None
        poll(lambda: bool(recorder.written), timeout_seconds=10, interval_seconds=0.01)
        assert recorder.written == [report(NOW)]
    finally:
        publisher.stop(timeout_seconds=5)


def test_the_gpunode_object_is_owned_by_its_node() -> None:
    obj = gpunode_object("gpu-node-1", "1234-uid")
    assert obj == {
        "apiVersion": names.GROUP_VERSION,
        "kind": "GPUNode",
        "metadata": {
            "name": "gpu-node-1",
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "name": "gpu-node-1",
                    "uid": "1234-uid",
                    "controller": False,
                    "blockOwnerDeletion": False,
                }
            ],
        },
        "spec": {"nodeName": "gpu-node-1"},
    }
    assert is_owned_by(dict(obj), "1234-uid")
    assert not is_owned_by(dict(obj), "an-older-node-uid")
    assert not is_owned_by({"metadata": {"name": "gpu-node-1"}}, "1234-uid")
    stale_spec = {**obj, "spec": {"nodeName": "other"}}
    assert not is_owned_by(stale_spec, "1234-uid")
