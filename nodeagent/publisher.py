"""Writing the node's GPUNode: create it owned by its Node, then patch `/status` when it matters.

`GpuNodeWriter` does the API calls; `Publisher` runs them on its own thread, so a slow or dead API
server never delays sampling. The sampler offers every report; the publisher writes the newest one
when `publish_reason` says so (a material change or the heartbeat). A failed write is retried with
exponential backoff and full jitter, always with the newest report; the agent never exits on API
errors, and the first write after the server is back carries the current state.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from headroom.backoff import Backoff
from headroom.report import NodeReport, report_to_status
from headroom.worker import Worker
from kubeapi.client import Conflict, KubeApi, NotFound
from nodeagent import api
from nodeagent.report import publish_reason
from nodeagent.wire import StatusPatch, gpunode_object, is_owned_by, owner_reference

log = logging.getLogger(__name__)

RETRY_INITIAL_SECONDS = 1.0
RETRY_MAX_SECONDS = 16.0  # "as soon as the API is back": at most this long after it is


class GpuNodeWriter:
    """The API calls for one node's GPUNode."""

    def __init__(self, kube: KubeApi, node_name: str) -> None:
        self.kube = kube
        self.node_name = node_name
        self._ensured = False

    def write(self, report: NodeReport) -> None:
        if not self._ensured:
            self.ensure()
        body: StatusPatch = {"status": report_to_status(report)}
        try:
            api.patch_gpunode_status(self.kube, self.node_name, patch=body)
        except NotFound:  # deleted (by a person, or with its Node): create it again
            self._ensured = False
            raise

    def ensure(self) -> None:
        """The GPUNode exists, owned by the current Node object. Without the Node there is no
        owner to give it, so nothing is created (it would never be cleaned up)."""
        try:
            node = api.get_node(self.kube, self.node_name)
        except NotFound as exc:
            raise NotFound(
                f"Node {self.node_name!r} not found; the GPUNode is created once it exists"
            ) from exc
        node_uid = str(node["metadata"]["uid"])
        try:
            current = api.get_gpunode(self.kube, self.node_name)
        except NotFound:
            current = self._create(node_uid)
        if not is_owned_by(current, node_uid):  # left from an earlier Node of the same name
            api.patch_gpunode(
                self.kube,
                self.node_name,
                patch={
                    "metadata": {"ownerReferences": [owner_reference(self.node_name, node_uid)]},
                    "spec": {"nodeName": self.node_name},
                },
            )
        self._ensured = True

    def _create(self, node_uid: str) -> dict[str, object]:
        try:
            created = api.create_gpunode(self.kube, gpunode_object(self.node_name, node_uid))
        except Conflict:  # created meanwhile (an earlier attempt that timed out)
            return api.get_gpunode(self.kube, self.node_name)
        log.info("created GPUNode %s", self.node_name)
        return created


@dataclass(frozen=True)
class PublishStats:
    publishes: int = 0
    errors: int = 0
    last_published: NodeReport | None = None
    last_success_unix_seconds: float | None = None
    last_error: str = ""


class Publisher:
    """Writes offered reports on a background thread (or by calling `step()` directly)."""

    def __init__(
        self,
        write: Callable[[NodeReport], None],
        *,
        deadband_bytes: int,
        heartbeat_seconds: float,
        interval_seconds: float,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._write = write
        self.deadband_bytes = deadband_bytes
        self.heartbeat_seconds = heartbeat_seconds
        self.interval_seconds = interval_seconds
        self.backoff = backoff or Backoff(
            initial_seconds=RETRY_INITIAL_SECONDS, max_seconds=RETRY_MAX_SECONDS
        )
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: NodeReport | None = None
        self._retry_at: float | None = None  # set while failing
        self._stats = PublishStats()
        self.worker = Worker(self._run, name="publisher")

    @property
    def stats(self) -> PublishStats:
        with self._lock:
            return self._stats

    @property
    def retry_at(self) -> float | None:
        """When the next attempt after a failed write is due (on the publisher's clock)."""
        return self._retry_at

    def offer(self, report: NodeReport) -> None:
        with self._lock:
            self._pending = report
        self.worker.wake()

    def start(self) -> None:
        self.worker.start()

    def stop(self, timeout_seconds: float = 15.0) -> None:
        self.worker.stop(timeout_seconds)

    def _run(self) -> None:
        stopped, woken = self.worker.stopped, self.worker.woken
        while not stopped.is_set():
            retry_at = self._retry_at
            timeout = None if retry_at is None else max(0.0, retry_at - self._clock())
            woken.wait(timeout)
            woken.clear()
            if not stopped.is_set():
                self.step()

    def step(self) -> str | None:
        """Write the newest report if it is due; returns why it was written, or None."""
        with self._lock:
            report, stats = self._pending, self._stats
        if report is None:
            return None
        if self._retry_at is not None:
            if self._clock() < self._retry_at:
                return None
            reason: str | None = "retry after an error"
        else:
            reason = publish_reason(
                stats.last_published,
                report,
                deadband_bytes=self.deadband_bytes,
                heartbeat_seconds=self.heartbeat_seconds,
                interval_seconds=self.interval_seconds,
            )
        if reason is None:
            return None
        try:
            self._write(report)
        except Exception as exc:  # ApiError above all; whatever it is, retry, never exit
            self._failed(exc)
            return None
        if self._retry_at is not None:
            log.info("publishing works again after %d failed attempts", self.backoff.failures)
        self._retry_at = None
        self.backoff.reset()
        with self._lock:
            self._stats = PublishStats(
                publishes=stats.publishes + 1,
                errors=stats.errors,
                last_published=report,
                last_success_unix_seconds=time.time(),
                last_error=stats.last_error,
            )
        log.debug("published the report of %s (%s)", report.node_name, reason)
        return reason

    def _failed(self, exc: Exception) -> None:
        delay = self.backoff.next_delay()
        self._retry_at = self._clock() + delay
        with self._lock:
            s = self._stats
            self._stats = PublishStats(
                publishes=s.publishes,
                errors=s.errors + 1,
                last_published=s.last_published,
                last_success_unix_seconds=s.last_success_unix_seconds,
                last_error=str(exc),
            )
        log.warning("publishing the GPUNode failed (%s); retrying in %.1fs", exc, delay)
