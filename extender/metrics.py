"""The extender's Prometheus metrics, in a registry of its own (one per app instance)."""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

VERB_BUCKETS_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


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

    def track(
        self,
        *,
        reservations: Callable[[], int],
        leader: Callable[[], bool],
        requeued: Callable[[], int],
        cache_sync: dict[str, Callable[[], float]],
        scaler_reconciles: Callable[[], int] = lambda: 0,
    ) -> None:
        """Gauges computed when scraped."""
        self.reservations.set_function(lambda: float(reservations()))
        self.leader.set_function(lambda: 1.0 if leader() else 0.0)
        self.requeued.set_function(lambda: float(requeued()))
        self.scaler_reconciles.set_function(lambda: float(scaler_reconciles()))
        for name, last_sync in cache_sync.items():
            self.cache_age.labels(name).set_function(_age_of(last_sync))


def _age_of(last_sync_monotonic: Callable[[], float]) -> Callable[[], float]:
    def age_seconds() -> float:
        last = last_sync_monotonic()
        return time.monotonic() - last if last else float("nan")

    return age_seconds
