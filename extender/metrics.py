"""The extender's Prometheus metrics, in a registry of their own (one per app instance), and the
listener that serves them apart from the verbs (`--metrics-bind`).

Counters and histograms are fed by the verbs; the rest is read from the running parts when
scraped (`track`): leadership, reservations, the caches' ages, each node's GPU report age (so a
dead agent's node shows from here), the parked pods no GPU has room for, and each AIScaler's
replica counts, GPU limit and cold start as its status says (labels namespace, name).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from extender.scaler.figures import scaler_figures
from kubeapi.client import JsonDict

VERB_BUCKETS_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
SCALER_LABELS = ["namespace", "name"]
REPLICA_GAUGES = {  # status field -> metric
    "currentReplicas": "headroom_scaler_current_replicas",
    "desiredReplicas": "headroom_scaler_desired_replicas",
    "feasibleReplicas": "headroom_scaler_feasible_replicas",
    "appliedReplicas": "headroom_scaler_applied_replicas",
}


class ExtenderMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.verb_seconds = Histogram(
            "headroom_extender_verb_seconds",
            "Server time of each extender verb",
            ["verb"],
            buckets=VERB_BUCKETS_SECONDS,
            registry=self.registry,
        )
        self.filter_nodes = Counter(
            "headroom_extender_filter_nodes_total",
            "Nodes the filter verb judged, by result (passed, or why not)",
            ["result"],
            registry=self.registry,
        )
        self.binds = Counter(
            "headroom_extender_binds_total", "Bind verb results", ["result"], registry=self.registry
        )
        self.requests_refused = Counter(
            "headroom_extender_bad_requests_total",
            "Requests answered 400",
            ["verb"],
            registry=self.registry,
        )
        self.requeued = Gauge(
            "headroom_extender_requeued_pods",
            "Pods touched so the scheduler retries them (total)",
            registry=self.registry,
        )
        self.reservations = Gauge(
            "headroom_extender_reservations",
            "GPU claims no report shows yet (bound or binding pods)",
            registry=self.registry,
        )
        self.leader = Gauge(
            "headroom_extender_leader", "1 while this extender acts", registry=self.registry
        )
        self.scaler_reconciles = Gauge(
            "headroom_scaler_reconciles",
            "AIScaler rounds run by this extender (total)",
            registry=self.registry,
        )
        self.cache_age = Gauge(
            "headroom_extender_cache_age_seconds",
            "Seconds since each watch cache last heard from the API",
            ["cache"],
            registry=self.registry,
        )
        self.staleness_limit = Gauge(
            "headroom_extender_gpu_report_staleness_limit_seconds",
            "A GPU report older than this makes its node unfit (--staleness-seconds)",
            registry=self.registry,
        )
        self.waiting_pods = Gauge(
            "headroom_extender_pods_waiting_for_gpu_memory",
            "Parked pods of the headroom scheduler that no GPU has room for now (leader only)",
            registry=self.registry,
        )
        self.waiting_oldest = Gauge(
            "headroom_extender_gpu_memory_wait_oldest_seconds",
            "Seconds since the first refusal of the longest-waiting of those pods (0: none)",
            registry=self.registry,
        )
        self.cluster = ClusterCollector()
        self.registry.register(self.cluster)

    def track(
        self,
        *,
        reservations: Callable[[], int],
        leader: Callable[[], bool],
        requeued: Callable[[], int],
        cache_sync: dict[str, Callable[[], float]],
        scaler_reconciles: Callable[[], int] = lambda: 0,
        staleness_seconds: float | None = None,
        report_times: Callable[[], Mapping[str, float]] = dict,
        waiting_since: Callable[[], Mapping[str, float]] = dict,
        scalers: Callable[[], Iterable[JsonDict]] = tuple,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Gauges computed when scraped."""
        self.reservations.set_function(lambda: float(reservations()))
        self.leader.set_function(lambda: 1.0 if leader() else 0.0)
        self.requeued.set_function(lambda: float(requeued()))
        self.scaler_reconciles.set_function(lambda: float(scaler_reconciles()))
        for name, last_sync in cache_sync.items():
            self.cache_age.labels(name).set_function(_age_of(last_sync))
        if staleness_seconds is not None:
            self.staleness_limit.set(staleness_seconds)
        self.waiting_pods.set_function(lambda: float(len(waiting_since())))
        self.waiting_oldest.set_function(lambda: _oldest_age(waiting_since().values(), clock()))
        self.cluster.report_times, self.cluster.scalers = report_times, scalers
        self.cluster.clock = clock


class ClusterCollector(Collector):
    """Series whose label values come and go with the cluster: a node's report age, an
    AIScaler's figures. Built at each scrape, so a deleted node or AIScaler leaves no series."""

    def __init__(self) -> None:
        self.report_times: Callable[[], Mapping[str, float]] = dict
        self.scalers: Callable[[], Iterable[JsonDict]] = tuple
        self.clock: Callable[[], float] = time.time

    def collect(self) -> Iterable[Metric]:
        now = self.clock()
        ages = GaugeMetricFamily(
            "headroom_extender_gpu_report_age_seconds",
            "Seconds since the sample of each node's GPU report the extender holds",
            labels=["node"],
        )
        for node, reported_at in sorted(self.report_times().items()):
            ages.add_metric([node], max(0.0, now - reported_at))
        yield ages
        yield from _scaler_families(list(self.scalers()))


def _scaler_families(scalers: list[JsonDict]) -> Iterable[Metric]:
    def family(name: str, doc: str) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, doc, labels=SCALER_LABELS)

    replicas = {
        field: family(metric, f"The AIScaler's status.{field}")
        for field, metric in REPLICA_GAUGES.items()
    }
    limited = family(
        "headroom_scaler_limited_by_gpu",
        "1 while ScalingLimited is True for InsufficientGPUHeadroom: fewer replicas than desired "
        "fit on the GPUs",
    )
    p50 = family(
        "headroom_scaler_cold_start_p50_seconds", "Median creation-to-serving time of replicas"
    )
    p90 = family("headroom_scaler_cold_start_p90_seconds", "p90 creation-to-serving time")
    for scaler in scalers:
        figures = scaler_figures(scaler)
        if figures is None:
            continue
        labels = [figures.namespace, figures.name]
        for field, value in figures.replicas.items():
            replicas[field].add_metric(labels, value)
        limited.add_metric(labels, 1.0 if figures.limited_by_gpu else 0.0)
        for metric, seconds in (
            (p50, figures.cold_start_p50_seconds),
            (p90, figures.cold_start_p90_seconds),
        ):
            if seconds is not None:
                metric.add_metric(labels, seconds)
    yield from (*replicas.values(), limited, p50, p90)


def _age_of(last_sync_monotonic: Callable[[], float]) -> Callable[[], float]:
    def age_seconds() -> float:
        last = last_sync_monotonic()
        return time.monotonic() - last if last else float("nan")

    return age_seconds


def _oldest_age(since: Iterable[float], now: float) -> float:
    return max((max(0.0, now - t) for t in since), default=0.0)


class MetricsListener:
    """/metrics of `registry` on host:port of its own (`--metrics-bind`), so Prometheus can
    scrape the extender while its verbs stay on the pod's loopback. A part of the Runtime."""

    def __init__(self, registry: CollectorRegistry, *, host: str, port: int) -> None:
        self.registry, self.host, self.port = registry, host, port
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._server, self._thread = start_http_server(
            self.port, addr=self.host, registry=self.registry
        )
        self.port = self._server.server_port  # the one chosen, when asked for port 0

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
