"""The agent's HTTP endpoints: `/metrics` (Prometheus), `/healthz` and `/livez`.

- `/metrics`: per GPU total/used/free bytes, utilisation, temperature, power, health, whether NVML
  says it is lost, and the critical XIDs seen on it; per node whether NVML is usable, how many GPUs
  it reports, the age of the last report written; publishes and publish errors; the process's own
  CPU and memory; the DeviceTaintRules the agent holds for its unhealthy GPUs. Every series but the
  process's carries `node`, so alerts and dashboards name the node whatever the scrape config
  adds. Collected from the agent's latest state at scrape time, so a GPU that disappears leaves no
  stale series.
- `/healthz` (readiness): NVML readable and the last write recent (within two heartbeats).
- `/livez` (liveness): the sampling loop is still turning.

A small WSGI app served by the standard library's threading server; every connection has a
socket timeout, so a stuck scraper cannot hold a thread forever.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, ProcessCollector, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from headroom.report import NodeReport
from nodeagent.publisher import PublishStats
from nodeagent.tainter import TaintStats
from nodeagent.taints import taint_value

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
NODE_LABELS = ["node"]
GPU_LABELS = ["node", "gpu", "uuid", "model"]


@dataclass
class AgentStatus:
    """What the sampler last saw, shared with the HTTP threads (whole-value swaps only)."""

    interval_seconds: float
    heartbeat_seconds: float
    started_monotonic: float = field(default_factory=time.monotonic)
    report: NodeReport | None = None
    last_sample_monotonic: float | None = None
    publish_stats: Callable[[], PublishStats] = PublishStats
    taint_stats: Callable[[], TaintStats] = TaintStats  # the zero stats while taints are off
    node_name: str = ""  # the `node` label before the first sample names it
    # Critical XIDs seen per GPU UUID since the agent started (the sampler's count).
    critical_xids: Callable[[], Mapping[str, int]] = dict

    def sampled(self, report: NodeReport) -> None:
        self.report = report
        self.last_sample_monotonic = time.monotonic()

    def health(self, now_unix_seconds: float) -> tuple[bool, dict[str, Any]]:
        """(ready, details) for /healthz."""
        report, stats = self.report, self.publish_stats()
        nvml_ok = report is not None and report.healthy
        recent = 2 * self.heartbeat_seconds
        if stats.last_success_unix_seconds is None:
            age = None
            publish_ok = time.monotonic() - self.started_monotonic < recent
        else:
            age = max(0.0, now_unix_seconds - stats.last_success_unix_seconds)
            publish_ok = age < recent
        return nvml_ok and publish_ok, {
            "nvml": "ok" if nvml_ok else (report.reason if report else "not sampled yet"),
            "lastPublishAgeSeconds": age,
            "lastPublishError": stats.last_error,
            "publishRecent": publish_ok,
        }

    def alive(self) -> bool:
        last = self.last_sample_monotonic or self.started_monotonic
        return time.monotonic() - last < max(3 * self.interval_seconds, 30.0)


class AgentCollector(Collector):
    def __init__(self, status: AgentStatus) -> None:
        self.status = status

    def collect(self) -> Iterable[Metric]:
        report, stats = self.status.report, self.status.publish_stats()
        node = self.status.node_name or (report.node_name if report else "")
        yield from _gpu_metrics(node, report, self.status.critical_xids())

        def gauge(name: str, doc: str, value: float | None) -> GaugeMetricFamily:
            family = GaugeMetricFamily(name, doc, labels=NODE_LABELS)
            if value is not None:
                family.add_metric([node], value)
            return family

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            family = CounterMetricFamily(name, doc, labels=NODE_LABELS)
            family.add_metric([node], value)
            return family

        yield gauge(
            "headroom_nodeagent_nvml_up",
            "1 when NVML could be read at the last sample",
            1.0 if report is not None and report.healthy else 0.0,
        )
        yield gauge(
            "headroom_nodeagent_gpus",
            "GPUs in the last sample's report (a GPU gone from the bus leaves it)",
            None if report is None else float(len(report.gpus)),
        )
        published = stats.last_published
        yield gauge(
            "headroom_nodeagent_report_age_seconds",
            "seconds since the sample of the last report written",
            None if published is None else published.age_seconds(time.time()),
        )
        yield counter(
            "headroom_nodeagent_publishes", "GPUNode status writes that succeeded", stats.publishes
        )
        yield counter(
            "headroom_nodeagent_publish_errors",
            "GPUNode writes that failed (each is retried)",
            stats.errors,
        )
        taint_stats = self.status.taint_stats()
        yield gauge(
            "headroom_nodeagent_device_taints",
            "DeviceTaintRules this agent holds on its node's unhealthy GPUs (--device-taints)",
            taint_stats.held,
        )
        yield counter(
            "headroom_nodeagent_device_taint_errors",
            "rounds of reconciling device taints that failed (each is retried)",
            taint_stats.errors,
        )


def _gpu_metrics(
    node: str, report: NodeReport | None, critical_xids: Mapping[str, int]
) -> Iterator[Metric]:
    def family(name: str, doc: str) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, doc, labels=GPU_LABELS)

    total = family("headroom_gpu_memory_total_bytes", "GPU memory in total")
    used = family("headroom_gpu_memory_used_bytes", "GPU memory not free (reserved included)")
    free = family("headroom_gpu_memory_free_bytes", "GPU memory free")
    healthy = family("headroom_gpu_healthy", "1 when the GPU is healthy")
    lost = family("headroom_gpu_lost", "1 when NVML answers that the GPU is lost (off the bus)")
    util = family("headroom_gpu_utilization_ratio", "share of time a kernel ran (0..1)")
    mem_util = family(
        "headroom_gpu_memory_utilization_ratio", "share of time memory was read or written (0..1)"
    )
    temperature = family("headroom_gpu_temperature_celsius", "GPU temperature")
    power = family("headroom_gpu_power_watts", "GPU power draw")
    # Every GPU's counter exists from the start at 0, so increase() sees the first XID.
    xids = CounterMetricFamily(
        "headroom_gpu_xid_critical_errors",
        "critical XIDs (hardware or firmware faults, nodeagent/xid.py) since the agent started",
        labels=GPU_LABELS,
    )
    nvml_usable = report is not None and report.healthy
    for gpu in report.gpus if report else ():
        labels = [node, str(gpu.index), gpu.uuid, gpu.model]
        total.add_metric(labels, gpu.total_bytes)
        used.add_metric(labels, gpu.used_bytes)
        free.add_metric(labels, gpu.free_bytes)
        healthy.add_metric(labels, 1.0 if gpu.healthy else 0.0)
        # The classification the device taints use: "lost" only while NVML itself answers.
        is_lost = not gpu.healthy and taint_value(gpu, nvml_usable=nvml_usable) == "lost"
        lost.add_metric(labels, 1.0 if is_lost else 0.0)
        xids.add_metric(labels, critical_xids.get(gpu.uuid, 0))
        for metric, value, scale in (
            (util, gpu.utilization_percent, 100.0),
            (mem_util, gpu.memory_utilization_percent, 100.0),
            (temperature, gpu.temperature_celsius, 1.0),
            (power, gpu.power_watts, 1.0),
        ):
            if value is not None:
                metric.add_metric(labels, value / scale)
    yield from (total, used, free, healthy, lost, xids, util, mem_util, temperature, power)


def create_app(
    status: AgentStatus, registry: CollectorRegistry | None = None
) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """The WSGI app: /metrics from `registry` (a fresh one with the agent's collectors if None)."""
    if registry is None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(AgentCollector(status))
        ProcessCollector(registry=registry)
    metrics_app = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return metrics_app(environ, start_response)  # type: ignore[no-any-return]
        if path == "/healthz":
            ok, details = status.health(time.time())
            return _json(start_response, 200 if ok else 503, {"ok": ok, **details})
        if path == "/livez":
            alive = status.alive()
            return _json(start_response, 200 if alive else 503, {"ok": alive})
        return _json(
            start_response,
            404,
            {"error": f"no such path {path!r}; try /metrics, /healthz or /livez"},
        )

    return app


def _json(start_response: StartResponse, code: int, body: dict[str, Any]) -> list[bytes]:
    payload = json.dumps(body).encode()
    reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[code]
    start_response(
        f"{code} {reason}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))],
    )
    return [payload]


class _Handler(WSGIRequestHandler):
    timeout = 10  # seconds per socket operation

    def log_message(self, format: str, *args: Any) -> None:
        pass  # scrapes every few seconds would flood the log


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class MetricsServer:
    """Serves the app on host:port from a daemon thread; port 0 picks a free one."""

    def __init__(
        self,
        app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]],
        *,
        host: str,
        port: int,
    ) -> None:
        server_class = _Server6 if ":" in host else _Server
        self._server = make_server(
            host, port, app, server_class=server_class, handler_class=_Handler
        )
        self.port: int = self._server.server_port
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics", daemon=True
        )

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
