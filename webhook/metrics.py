"""The webhook's Prometheus metrics, in a registry of their own per app instance.

Under gunicorn with several workers, prometheus_client's multiprocess mode is on (serving.server
sets PROMETHEUS_MULTIPROC_DIR before the workers import it): each worker writes its values to
files and `exposition()` adds up all workers, whichever of them answers the scrape.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from webhook.review import RESULTS

# Admission latency is sub-millisecond when healthy; the API server's timeout is seconds.
LATENCY_BUCKETS_SECONDS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)


class WebhookMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "headroom_webhook_requests",
            "Admission requests by result (patched, unchanged, ignored, denied, invalid, error).",
            ["result"],
            registry=r,
        )
        for result in RESULTS:  # every series exists from the start, at 0
            self.requests.labels(result=result)
        self.latency = Histogram(
            "headroom_webhook_request_duration_seconds",
            "Time to answer one admission request.",
            buckets=LATENCY_BUCKETS_SECONDS,
            registry=r,
        )
        self.patches = Counter(
            "headroom_webhook_patches",
            "Pods answered with a JSONPatch, by profile.",
            ["profile"],
            registry=r,
        )
        self.patch_operations = Counter(
            "headroom_webhook_patch_operations", "JSONPatch operations sent.", registry=r
        )
        self.reloads = Counter(
            "headroom_webhook_profile_reloads",
            "Profile file reloads: success, or failure (the last good profiles stay in use).",
            ["result"],
            registry=r,
        )
        for result in ("success", "failure"):
            self.reloads.labels(result=result)
        self.profiles_valid = Gauge(
            "headroom_webhook_profiles_file_valid",
            "1 when the profiles file on disk is the one in use, 0 after a rejected reload.",
            registry=r,
            multiprocess_mode="livemin",
        )
        self.profiles_valid.set(1)

    def exposition(self) -> bytes:
        """The Prometheus text of this process, or of all workers in multiprocess mode."""
        directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if not directory:
            return generate_latest(self.registry)
        combined = CollectorRegistry()
        MultiProcessCollector(combined, path=directory)  # type: ignore[no-untyped-call]
        return generate_latest(combined)

    def reloaded(self, ok: bool, message: str) -> None:
        self.reloads.labels(result="success" if ok else "failure").inc()
        self.profiles_valid.set(1 if ok else 0)
