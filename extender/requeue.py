"""Fast retry: pods rejected for GPU memory are retried soon after headroom appears.

The kube-scheduler parks a pod that no node fits and, unless a cluster event it watches moves it,
retries it only after a minute or more. A GPUNode report showing freed memory is not such an event.
So when the view reports headroom on a node, each pod the filter rejected for memory that now fits
somewhere gets its `headroom.dev/retry-after-headroom` annotation touched: any change to a pod's
spec or metadata makes the scheduler queue it again at once (within its backoff).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from extender.verbs import Settings
from extender.view import ClusterView, PodRef
from headroom import names
from headroom.demand import GpuDemand
from headroom.fit import Fit, fit
from headroom.kube import ApiError, Kube

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rejected:
    pod: PodRef
    demand: GpuDemand


class Requeuer:
    def __init__(self, kube: Kube, view: ClusterView, *, settings: Settings,
                 is_leader: Callable[[], bool], debounce_seconds: float = 0.3,
                 clock: Callable[[], float] = time.time) -> None:
        self.kube = kube
        self.view = view
        self.settings = settings
        self.is_leader = is_leader
        self.debounce_seconds = debounce_seconds
        self.clock = clock
        self.nudged = 0
        self._rejected: dict[str, Rejected] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        view.listeners.append(self.on_headroom)

    def rejected(self, pod: PodRef, demand: GpuDemand) -> None:
        with self._lock:
            self._rejected[pod.uid] = Rejected(pod, demand)

    def forget(self, pod_uid: str) -> None:
        """The pod was bound or deleted: no retry needed."""
        with self._lock:
            self._rejected.pop(pod_uid, None)

    def pending(self) -> int:
        with self._lock:
            return len(self._rejected)

    def on_headroom(self, node_name: str, why: str) -> None:
        log.debug("headroom on %s: %s", node_name, why)
        self._wake.set()

    def start(self) -> None:
        threading.Thread(target=self._run, name="requeue", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            if self._stop.wait(self.debounce_seconds):  # gather a burst of changes
                return
            self._wake.clear()
            if self.is_leader():
                self.retry_fitting()

    def retry_fitting(self) -> int:
        """Touch every rejected pod that now fits some node; returns how many were touched."""
        with self._lock:
            candidates = list(self._rejected.values())
        nodes = [self.view.snapshot(n) for n in self.view.schedulable_nodes()]
        touched = 0
        for entry in candidates:
            if any(isinstance(fit(entry.demand, node, now_unix_seconds=self.clock(),
                                  staleness_seconds=self.settings.staleness_seconds), Fit)
                   for node in nodes):
                with self._lock:
                    self._rejected.pop(entry.pod.uid, None)
                touched += self._touch(entry.pod)
        self.nudged += touched
        return touched

    def _touch(self, pod: PodRef) -> int:
        path = f"/api/v1/namespaces/{pod.namespace}/pods/{pod.name}"
        body = {"metadata": {"uid": pod.uid, "annotations": {
            # Milliseconds, so two retries within one second still change the pod.
            names.RETRY_ANNOTATION: f"{self.clock():.3f}"}}}
        try:
            self.kube.request("PATCH", path, body=body,
                              content_type="application/merge-patch+json")
        except ApiError as exc:  # gone or replaced: nothing to retry
            log.info("cannot requeue %s/%s: %s", pod.namespace, pod.name, exc)
            return 0
        return 1
