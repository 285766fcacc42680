"""Metric sources against real servers on loopback: model-server stand-ins exposing a queue-depth
gauge, and a real Prometheus (Debian's package) scraping them."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest

from extender.scaler.sources import (
    PodEndpoint,
    SourceDown,
    gpu_utilization,
    metric_value,
    query_prometheus,
    scrape_pods,
)
from extender.scaler.spec import PodsSource
from headroom.report import GpuPod, GpuState, NodeReport
from tests.e2e.waiting import eventually
from tests.extender.scaler.standins import QUEUE, ModelServer, running_prometheus
from tooling.process import free_port

pytestmark = pytest.mark.server  # starts server processes on loopback


@pytest.fixture
def servers() -> Iterator[dict[str, ModelServer]]:
    made = {
        "a": ModelServer(waiting=6),
        "b": ModelServer(waiting=2),
        "broken": ModelServer(waiting=9, behaviour="error"),
        "stuck": ModelServer(waiting=9, behaviour="hang"),
    }
    yield made
    for server in made.values():
        server.close()


def test_scrapes_answering_pods_and_leaves_failures_out(servers: dict[str, ModelServer]) -> None:
    pods = [PodEndpoint(name, "127.0.0.1") for name in servers]
    pods.append(PodEndpoint("refusing", "127.0.0.1"))
    ports = {name: s.port for name, s in servers.items()}
    ports["refusing"] = free_port()  # nothing listens there

    values = {}
    for pod in pods:  # each pod has its own port here; in a cluster they share one
        source = PodsSource(metric_name=QUEUE, port=ports[pod.name], path="/metrics")
        values.update(scrape_pods([pod], source=source, timeout_seconds=1.0))
    assert values == {"a": 7.0, "b": 3.0}  # labels summed; 500, refused and timed out: absent


def test_metric_value_reads_gauges_counters_and_nan() -> None:
    text = (
        '# TYPE q gauge\nq{a="1"} 2\nq{a="2"} 3\n'
        "# TYPE served counter\nserved_total 10\n# TYPE bad gauge\nbad NaN\n"
    )
    assert metric_value(text, "q") == 5.0
    assert metric_value(text, "served") == 10.0
    assert metric_value(text, "bad") is None
    assert metric_value(text, "absent") is None


def test_gpu_utilization_from_reports() -> None:
    gpus = (
        GpuState(
            index=0,
            uuid="g0",
            model="m",
            total_bytes=1,
            used_bytes=1,
            pods=(GpuPod("u1", 1),),
            utilization_percent=80.0,
        ),
        GpuState(
            index=1,
            uuid="g1",
            model="m",
            total_bytes=1,
            used_bytes=1,
            pods=(GpuPod("u1", 1), GpuPod("u2", 1)),
            utilization_percent=40.0,
        ),
        GpuState(
            index=2,
            uuid="g2",
            model="m",
            total_bytes=1,
            used_bytes=1,
            pods=(GpuPod("u3", 1),),
            utilization_percent=None,
        ),
    )
    report = NodeReport(node_name="n", reported_at_unix_seconds=0.0, gpus=gpus)
    assert gpu_utilization({"p1": "u1", "p2": "u2", "p3": "u3", "p4": "u4"}, [report]) == {
        "p1": 60.0,
        "p2": 40.0,
    }


@pytest.fixture
def prometheus(servers: dict[str, ModelServer]) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    with running_prometheus([f"127.0.0.1:{servers[n].port}" for n in ("a", "b")]) as running:
        yield running


def test_a_real_prometheus_query(prometheus: tuple[str, subprocess.Popen[bytes]]) -> None:
    url, process = prometheus

    def total() -> bool:
        try:
            return query_prometheus(url, f"sum({QUEUE})") == 10.0  # 6+1 and 2+1
        except SourceDown:
            return False

    eventually(total, timeout_seconds=60, what="Prometheus to have scraped both servers")
    assert query_prometheus(url, "sum(no_such_metric)") is None  # empty: missing, not zero
    assert query_prometheus(url, "0/0") is None  # NaN: missing
    assert query_prometheus(url, "vector(4)") == 4.0
    with pytest.raises(SourceDown):
        query_prometheus(url, "sum(")  # refused query
    process.kill()
    process.wait(30)
    started = time.monotonic()
    with pytest.raises(SourceDown):
        query_prometheus(url, f"sum({QUEUE})", timeout_seconds=2)
    assert time.monotonic() - started < 10  # a dead peer is an error, not a hang
