"""The extender's /metrics computed when scraped: each node's report age, the pods waiting for GPU
memory, each AIScaler's figures; how build_runtime feeds them; the --metrics-bind listener."""

from __future__ import annotations

import urllib.request
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from extender.app import build_runtime
from extender.config import ExtenderConfig
from extender.metrics import ExtenderMetrics, MetricsListener
from extender.view import ClusterView
from kubeapi.cache import ADDED, DELETED, MODIFIED, WatchEvent
from tests.extender.builders import NOW, gpunode, node
from tests.kubeapi.fake import FakeKube

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def scrape(metrics: ExtenderMetrics) -> Samples:
    return samples(generate_latest(metrics.registry).decode())


def tracked(**sources: Any) -> ExtenderMetrics:
    metrics = ExtenderMetrics()
    metrics.track(
        reservations=lambda: 0,
        leader=lambda: True,
        requeued=lambda: 0,
        cache_sync={},
        **sources,
    )
    return metrics


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def test_each_nodes_report_age_follows_the_view_and_a_deleted_report_leaves_no_series() -> None:
    view, clock = ClusterView(), Clock()
    view.load(
        gpunodes=[gpunode("n1", [80], age_seconds=1), gpunode("n2", [80], age_seconds=200)],
        nodes=[node("n1"), node("n2")],
        pods=[],
    )
    metrics = tracked(report_times=view.report_times, staleness_seconds=90.0, clock=clock)
    age = "headroom_extender_gpu_report_age_seconds"
    got = scrape(metrics)
    assert got[(age, (("node", "n1"),))] == 1.0
    assert got[(age, (("node", "n2"),))] == 200.0
    assert got[("headroom_extender_gpu_report_staleness_limit_seconds", ())] == 90.0
    clock.now += 30  # no new report: older
    assert scrape(metrics)[(age, (("node", "n1"),))] == 31.0
    view.apply_gpunode(WatchEvent(MODIFIED, gpunode("n1", [80], age_seconds=-30)))  # fresh
    view.apply_gpunode(WatchEvent(DELETED, gpunode("n2", [80])))
    got = scrape(metrics)
    assert got[(age, (("node", "n1"),))] == 0.0
    assert (age, (("node", "n2"),)) not in got


def test_pods_waiting_for_gpu_memory_count_and_the_oldest_wait() -> None:
    waiting: dict[str, float] = {}
    clock = Clock()
    metrics = tracked(waiting_since=lambda: waiting, clock=clock)
    count, oldest = (
        ("headroom_extender_pods_waiting_for_gpu_memory", ()),
        ("headroom_extender_gpu_memory_wait_oldest_seconds", ()),
    )
    got = scrape(metrics)
    assert (got[count], got[oldest]) == (0, 0)
    waiting.update({"a": NOW - 600, "b": NOW - 60})
    got = scrape(metrics)
    assert (got[count], got[oldest]) == (2, 600)
    clock.now += 60
    assert scrape(metrics)[oldest] == 660
    del waiting["a"]
    got = scrape(metrics)
    assert (got[count], got[oldest]) == (1, 120)


def aiscaler(name: str, **status: Any) -> dict[str, Any]:
    return {"metadata": {"namespace": "ml", "name": name, "uid": name}, "status": status}


LIMITED = {
    "type": "ScalingLimited",
    "status": "True",
    "reason": "InsufficientGPUHeadroom",
    "message": "6 desired, 4 fit",
}


def test_each_aiscaler_shows_its_replicas_gpu_limit_and_cold_start_as_its_status_says() -> None:
    scalers = [
        aiscaler(
            "llama",
            currentReplicas=4,
            desiredReplicas=6,
            feasibleReplicas=4,
            appliedReplicas=4,
            conditions=[LIMITED],
            coldStart={"p50Seconds": 95.5, "p90Seconds": 180.0, "replicas": 7},
        ),
        aiscaler("new"),  # no round yet: no counts, not limited
    ]
    metrics = tracked(scalers=lambda: scalers)
    llama, new = (("name", "llama"), ("namespace", "ml")), (("name", "new"), ("namespace", "ml"))
    got = scrape(metrics)
    assert got[("headroom_scaler_desired_replicas", llama)] == 6
    assert got[("headroom_scaler_feasible_replicas", llama)] == 4
    assert got[("headroom_scaler_applied_replicas", llama)] == 4
    assert got[("headroom_scaler_current_replicas", llama)] == 4
    assert got[("headroom_scaler_limited_by_gpu", llama)] == 1
    assert got[("headroom_scaler_cold_start_p50_seconds", llama)] == 95.5
    assert got[("headroom_scaler_cold_start_p90_seconds", llama)] == 180.0
    assert got[("headroom_scaler_limited_by_gpu", new)] == 0
    assert ("headroom_scaler_desired_replicas", new) not in got
    assert ("headroom_scaler_cold_start_p50_seconds", new) not in got
    # The limit lifts, then the AIScaler is deleted.
    scalers[0]["status"]["conditions"] = [{**LIMITED, "status": "False", "reason": "TooMany"}]
    assert scrape(metrics)[("headroom_scaler_limited_by_gpu", llama)] == 0
    del scalers[0]
    assert not [key for key in scrape(metrics) if key[1] == llama]


def test_build_runtime_feeds_the_view_the_requeuer_and_the_staleness_limit() -> None:
    config = ExtenderConfig(staleness_seconds=45, metrics_bind="127.0.0.1:0")
    runtime = build_runtime(FakeKube(), config)  # nothing started
    assert [p for p in runtime.parts if isinstance(p, MetricsListener)]
    assert not [
        p
        for p in build_runtime(FakeKube(), ExtenderConfig()).parts
        if isinstance(p, MetricsListener)
    ]
    runtime.view.apply_node(WatchEvent(ADDED, node("n1")))
    runtime.view.apply_gpunode(WatchEvent(ADDED, gpunode("n1", [80])))
    assert runtime.requeuer is not None
    runtime.requeuer.waiting_since = {"p": NOW}
    got = scrape(runtime.metrics)
    assert ("headroom_extender_gpu_report_age_seconds", (("node", "n1"),)) in got
    assert got[("headroom_extender_gpu_report_staleness_limit_seconds", ())] == 45
    assert got[("headroom_extender_pods_waiting_for_gpu_memory", ())] == 1


@pytest.mark.server
def test_the_metrics_listener_serves_the_registry_on_its_own_port() -> None:
    metrics = tracked(staleness_seconds=60.0)
    listener = MetricsListener(metrics.registry, host="127.0.0.1", port=0)
    listener.start()
    try:
        assert listener.port > 0
        url = f"http://127.0.0.1:{listener.port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        assert samples(text)[("headroom_extender_gpu_report_staleness_limit_seconds", ())] == 60
    finally:
        listener.stop()
    with pytest.raises(OSError):
        urllib.request.urlopen(url, timeout=2)
