"""/metrics, /healthz and /livez served over a real loopback socket."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from headroom.report import GpuState, NodeReport
from nodeagent.metrics import AgentStatus, MetricsServer, create_app
from nodeagent.publisher import PublishStats
from nodeagent.tainter import TaintStats

pytestmark = pytest.mark.server  # starts server processes on loopback

GIB = 2**30
GPU = GpuState(
    index=0,
    uuid="GPU-0",
    model="NVIDIA L4",
    total_bytes=24 * GIB,
    used_bytes=6 * GIB,
    utilization_percent=40.0,
    temperature_celsius=55.0,
    power_watts=72.5,
)


class Stats:
    def __init__(self) -> None:
        self.value = PublishStats()

    def __call__(self) -> PublishStats:
        return self.value


@pytest.fixture
def stats() -> Stats:
    return Stats()


@pytest.fixture
def status(stats: Stats) -> AgentStatus:
    return AgentStatus(
        interval_seconds=5, heartbeat_seconds=30, publish_stats=stats, node_name="n1"
    )


@pytest.fixture
def base_url(status: AgentStatus) -> Iterator[str]:
    server = MetricsServer(create_app(status), host="127.0.0.1", port=0).start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_show_each_gpu_and_the_publisher(
    base_url: str, status: AgentStatus, stats: Stats
) -> None:
    now = time.time()
    report = NodeReport(
        node_name="n1",
        reported_at_unix_seconds=now - 12,
        gpus=(
            GPU,
            replace(
                GPU,
                index=1,
                uuid="GPU-1",
                healthy=False,
                reason="GPU is lost",
                utilization_percent=None,
                temperature_celsius=None,
                power_watts=None,
            ),
        ),
    )
    status.sampled(report)
    stats.value = PublishStats(
        publishes=4, errors=2, last_published=report, last_success_unix_seconds=now - 12
    )
    code, text = get(f"{base_url}/metrics")
    assert code == 200
    got = samples(text)
    gpu0 = (("gpu", "0"), ("model", "NVIDIA L4"), ("node", "n1"), ("uuid", "GPU-0"))
    gpu1 = (("gpu", "1"), ("model", "NVIDIA L4"), ("node", "n1"), ("uuid", "GPU-1"))
    assert got[("headroom_gpu_memory_total_bytes", gpu0)] == 24 * GIB
    assert got[("headroom_gpu_memory_used_bytes", gpu0)] == 6 * GIB
    assert got[("headroom_gpu_memory_free_bytes", gpu0)] == 18 * GIB
    assert got[("headroom_gpu_utilization_ratio", gpu0)] == 0.4
    assert got[("headroom_gpu_temperature_celsius", gpu0)] == 55.0
    assert got[("headroom_gpu_power_watts", gpu0)] == 72.5
    assert got[("headroom_gpu_healthy", gpu0)] == 1.0
    assert got[("headroom_gpu_healthy", gpu1)] == 0.0
    assert ("headroom_gpu_utilization_ratio", gpu1) not in got  # unknown is absent, not 0
    assert got[("headroom_gpu_lost", gpu0)] == 0.0
    assert got[("headroom_gpu_lost", gpu1)] == 1.0
    assert got[("headroom_gpu_xid_critical_errors_total", gpu0)] == 0  # there from the start
    node = (("node", "n1"),)
    assert got[("headroom_nodeagent_nvml_up", node)] == 1.0
    assert got[("headroom_nodeagent_gpus", node)] == 2
    assert got[("headroom_nodeagent_publishes_total", node)] == 4
    assert got[("headroom_nodeagent_publish_errors_total", node)] == 2
    assert 12 <= got[("headroom_nodeagent_report_age_seconds", node)] < 60
    assert got[("process_resident_memory_bytes", ())] > 0


def test_a_gpu_that_disappears_leaves_no_series(base_url: str, status: AgentStatus) -> None:
    status.sampled(NodeReport(node_name="n1", reported_at_unix_seconds=time.time(), gpus=(GPU,)))
    assert "GPU-0" in get(f"{base_url}/metrics")[1]
    status.sampled(
        NodeReport(
            node_name="n1", reported_at_unix_seconds=time.time(), healthy=False, reason="driver"
        )
    )
    text = get(f"{base_url}/metrics")[1]
    assert "GPU-0" not in text
    assert samples(text)[("headroom_nodeagent_nvml_up", (("node", "n1"),))] == 0.0
    assert samples(text)[("headroom_nodeagent_gpus", (("node", "n1"),))] == 0


def test_metrics_count_critical_xids_per_gpu(base_url: str, status: AgentStatus) -> None:
    status.sampled(
        NodeReport(
            node_name="n1",
            reported_at_unix_seconds=time.time(),
            gpus=(GPU, replace(GPU, index=1, uuid="GPU-1")),
        )
    )
    xids = "headroom_gpu_xid_critical_errors_total"
    gpu1 = (("gpu", "1"), ("model", "NVIDIA L4"), ("node", "n1"), ("uuid", "GPU-1"))
    assert samples(get(f"{base_url}/metrics")[1])[(xids, gpu1)] == 0
    status.critical_xids = lambda: {"GPU-1": 3, "GPU-gone": 1}
    got = samples(get(f"{base_url}/metrics")[1])
    assert got[(xids, gpu1)] == 3
    assert not [key for key in got if "GPU-gone" in str(key)]  # only GPUs in the report


def test_a_gpu_is_lost_only_while_nvml_answers_for_the_node(
    base_url: str, status: AgentStatus
) -> None:
    """NVML unusable on the whole node marks every GPU unhealthy with that reason: the node's
    alert (nvml_up), not a lost GPU."""
    lost = replace(GPU, healthy=False, reason="GPU is lost (nvmlDeviceGetHandleByIndex)")
    gpu0 = (("gpu", "0"), ("model", "NVIDIA L4"), ("node", "n1"), ("uuid", "GPU-0"))
    status.sampled(NodeReport(node_name="n1", reported_at_unix_seconds=time.time(), gpus=(lost,)))
    assert samples(get(f"{base_url}/metrics")[1])[("headroom_gpu_lost", gpu0)] == 1.0
    status.sampled(
        NodeReport(
            node_name="n1",
            reported_at_unix_seconds=time.time(),
            gpus=(replace(GPU, healthy=False, reason="GPU is lost (nvmlInit)"),),
            healthy=False,
            reason="GPU is lost (nvmlInit)",
        )
    )
    assert samples(get(f"{base_url}/metrics")[1])[("headroom_gpu_lost", gpu0)] == 0.0
    status.sampled(
        NodeReport(
            node_name="n1",
            reported_at_unix_seconds=time.time(),
            gpus=(replace(GPU, healthy=False, reason="critical XID 79 (GPU has fallen off)"),),
        )
    )
    assert samples(get(f"{base_url}/metrics")[1])[("headroom_gpu_lost", gpu0)] == 0.0


def test_the_node_label_comes_from_the_report_when_not_given(stats: Stats) -> None:
    status = AgentStatus(interval_seconds=5, heartbeat_seconds=30, publish_stats=stats)
    server = MetricsServer(create_app(status), host="127.0.0.1", port=0).start()
    try:
        url = f"http://127.0.0.1:{server.port}/metrics"
        status.sampled(NodeReport(node_name="n7", reported_at_unix_seconds=time.time()))
        assert samples(get(url)[1])[("headroom_nodeagent_nvml_up", (("node", "n7"),))] == 1.0
    finally:
        server.stop()


def test_healthz_wants_nvml_and_a_recent_publish(
    base_url: str, status: AgentStatus, stats: Stats
) -> None:
    now = time.time()
    status.sampled(NodeReport(node_name="n1", reported_at_unix_seconds=now, gpus=(GPU,)))
    code, body = get(f"{base_url}/healthz")  # just started: no publish needed yet
    assert (code, json.loads(body)["ok"]) == (200, True)
    stats.value = PublishStats(publishes=1, last_success_unix_seconds=now - 5)
    assert get(f"{base_url}/healthz")[0] == 200
    stats.value = PublishStats(
        publishes=1,
        errors=9,
        last_success_unix_seconds=now - 61,
        last_error="HTTP 0: cannot reach the API server",
    )
    code, body = get(f"{base_url}/healthz")
    details = json.loads(body)
    assert code == 503
    assert (details["publishRecent"], details["lastPublishError"]) == (
        False,
        "HTTP 0: cannot reach the API server",
    )
    stats.value = PublishStats(publishes=2, last_success_unix_seconds=now)
    status.sampled(
        NodeReport(
            node_name="n1",
            reported_at_unix_seconds=now,
            healthy=False,
            reason="NVIDIA driver not loaded",
        )
    )
    code, body = get(f"{base_url}/healthz")
    assert (code, json.loads(body)["nvml"]) == (503, "NVIDIA driver not loaded")


def test_healthz_fails_when_nothing_was_ever_published(stats: Stats) -> None:
    status = AgentStatus(
        interval_seconds=5,
        heartbeat_seconds=30,
        publish_stats=stats,
        started_monotonic=time.monotonic() - 61,
    )
    status.sampled(NodeReport(node_name="n1", reported_at_unix_seconds=time.time()))
    ok, details = status.health(time.time())
    assert (ok, details["publishRecent"]) == (False, False)


def test_livez_follows_the_sampling_loop(base_url: str, status: AgentStatus) -> None:
    assert get(f"{base_url}/livez")[0] == 200  # just started
    status.last_sample_monotonic = time.monotonic() - 31
    assert get(f"{base_url}/livez")[0] == 503
    status.sampled(NodeReport(node_name="n1", reported_at_unix_seconds=time.time()))
    assert get(f"{base_url}/livez")[0] == 200


def test_unknown_paths_are_404(base_url: str) -> None:
    code, body = get(f"{base_url}/")
    assert code == 404
    assert "/metrics" in json.loads(body)["error"]


def test_metrics_count_the_device_taints_held(base_url: str, status: AgentStatus) -> None:
    node = (("node", "n1"),)
    got = samples(get(f"{base_url}/metrics")[1])
    assert got[("headroom_nodeagent_device_taints", node)] == 0  # off: none held
    assert got[("headroom_nodeagent_device_taint_errors_total", node)] == 0
    status.taint_stats = lambda: TaintStats(held=2, rounds=5, errors=3)
    got = samples(get(f"{base_url}/metrics")[1])
    assert got[("headroom_nodeagent_device_taints", node)] == 2
    assert got[("headroom_nodeagent_device_taint_errors_total", node)] == 3
