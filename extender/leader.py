"""Who acts: the extender leads while the kube-scheduler beside it holds the scheduler's Lease.

`run_while_leading` is the loop of the controllers that act only while this extender leads.

The extender runs as a sidecar of a kube-scheduler that elects its leader through a Lease. Following
that same Lease (instead of electing separately) keeps the acting scheduler and the acting extender
in the same pod: two elections could pick different pods, and the leading scheduler would then be
answered by a standby. The kube-scheduler writes the holder as `<pod hostname>_<uuid>`. With no
Lease configured (one replica, leader election off) the extender always leads. A Lease that cannot
be read, or that expired, means standby: acting twice is worse than acting late.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from extender import api
from headroom.clock import parse_time
from headroom.fields import FieldError
from headroom.worker import Worker
from kubeapi.client import ApiError, KubeApi

log = logging.getLogger(__name__)


class Leadership:
    def __init__(
        self,
        kube: KubeApi | None,
        *,
        lease: tuple[str, str] | None,
        identity: str,
        poll_seconds: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.kube = kube
        self.lease = lease
        self.identity = identity
        self.poll_seconds = poll_seconds
        self.clock = clock
        self._leading = lease is None
        self.worker = Worker(self._run, name="leadership")
        self.on_change: list[Callable[[bool], None]] = []

    def is_leader(self) -> bool:
        return self._leading

    def start(self) -> None:
        if self.lease is not None:  # without a Lease this extender always leads
            self.worker.start()

    def stop(self) -> None:
        self.worker.stop()

    def check_once(self) -> bool:
        leading = self._holds_lease()
        if leading != self._leading:
            log.info("leadership: %s", "leading" if leading else "standing by")
            self._leading = leading
            for callback in list(self.on_change):
                callback(leading)
        return leading

    def _run(self) -> None:
        while not self.worker.stopped.is_set():
            self.check_once()
            self.worker.stopped.wait(self.poll_seconds)

    def _holds_lease(self) -> bool:
        assert self.lease is not None and self.kube is not None
        namespace, name = self.lease
        try:
            spec = (
                api.read_lease(
                    self.kube,
                    namespace=namespace,
                    name=name,
                    timeout_seconds=max(1.0, self.poll_seconds * 2),
                ).get("spec")
                or {}
            )
        except ApiError:
            return False
        holder = str(spec.get("holderIdentity") or "")
        if holder != self.identity and not holder.startswith(f"{self.identity}_"):
            return False
        try:
            renewed = parse_time(spec.get("renewTime"), field="spec.renewTime")
        except FieldError:
            return False
        return renewed + float(spec.get("leaseDurationSeconds") or 15) > self.clock()


def run_while_leading(
    work: Callable[[], object],
    *,
    stop: threading.Event,
    interval_seconds: float,
    is_leader: Callable[[], bool],
    what: str,
) -> None:
    """A controller's loop: every interval, while this extender leads, do the work; until stop.
    The loop outlives any one failure (logged), so a bad round never ends the controller."""
    while not stop.wait(interval_seconds):
        if is_leader():
            try:
                work()
            except Exception:
                log.exception("%s failed", what)
