"""DeviceTaintRules on this node's unhealthy GPUs (`--device-taints`), kept off the sampling path.

`DeviceTainter` runs on its own thread, as the publisher does. The sampler offers every report; a
round of reconciling runs when the set of unhealthy GPUs (or their reasons) changed, and every
`resync_seconds` anyway, to repair drift (a rule deleted by hand, a slice published late). A round
lists this node's ResourceSlices and the rules labelled with this node, then creates, updates and
deletes rules until they are what `nodeagent.taints.wanted_taints` says. The first round also
removes the rules a previous run left for GPUs that are fine now.

A failed round is retried with backoff; nothing here ever ends the agent. A cluster that does not
serve `resource.k8s.io/v1` (404 on the lists) turns the tainter off with one log line. A rule is
deleted only when its GPU is seen healthy or its device is no longer published: while NVML is
unusable, or for a GPU lost before this run could read its UUID, the rule stays.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from headroom import dra
from headroom.backoff import Backoff
from headroom.fields import FieldError
from headroom.report import NodeReport
from headroom.worker import Worker
from kubeapi.client import Conflict, KubeApi, NotFound
from nodeagent import api, taints

log = logging.getLogger(__name__)

RETRY_INITIAL_SECONDS = 1.0
RETRY_MAX_SECONDS = 30.0
CALL_TIMEOUT_SECONDS = 10.0

Key = tuple[bool, frozenset[tuple[str, str]]]


class NotServed(Exception):
    """The API server does not serve a resource the tainter needs (404 on its collection)."""


@dataclass(frozen=True)
class TaintStats:
    held: int = 0  # the rules of this node that exist, as far as the last call told
    rounds: int = 0  # rounds that completed
    errors: int = 0
    last_error: str = ""
    disabled: str = ""  # why the tainter turned itself off; "" while it works


def unhealthy_key(report: NodeReport) -> Key:
    """What a round depends on: whether NVML is usable and the unhealthy GPUs with reasons."""
    return report.healthy, frozenset(
        (g.uuid, taints.taint_value(g, nvml_usable=report.healthy))
        for g in report.gpus
        if not g.healthy
    )


class DeviceTainter:
    """Reconciles this node's DeviceTaintRules on a background thread (or by `step()`)."""

    def __init__(
        self,
        kube: KubeApi,
        node_name: str,
        *,
        effect: str,
        drivers: Iterable[str] = dra.DEFAULT_GPU_DRIVERS,
        resync_seconds: float = 30.0,
        timeout_seconds: float = CALL_TIMEOUT_SECONDS,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if effect not in taints.EFFECTS:
            raise ValueError(
                f"effect: expected one of {', '.join(taints.EFFECTS)} (got {effect!r})"
            )
        self.kube = kube
        self.node_name = node_name
        self.effect = effect
        self.drivers = tuple(drivers)
        self.resync_seconds = resync_seconds
        self.timeout_seconds = timeout_seconds
        self.backoff = backoff or Backoff(
            initial_seconds=RETRY_INITIAL_SECONDS, max_seconds=RETRY_MAX_SECONDS
        )
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: NodeReport | None = None
        self._last_key: Key | None = None  # of the last round that completed
        self._next_resync: float | None = None
        self._retry_at: float | None = None
        self._held: set[str] = set()
        self._stats = TaintStats()
        self.worker = Worker(self._run, name="device-tainter")
        try:
            taints.rule_name(node_name, "gpu-0")
        except ValueError as exc:
            self._disable(f"device taints off: {exc}")

    @property
    def stats(self) -> TaintStats:
        with self._lock:
            return self._stats

    @property
    def retry_at(self) -> float | None:
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
        while not stopped.is_set() and not self.stats.disabled:
            due = self._retry_at if self._retry_at is not None else self._next_resync
            woken.wait(None if due is None else max(0.0, due - self._clock()))
            woken.clear()
            if not stopped.is_set():
                self.step()

    def step(self) -> str | None:
        """Run a round if one is due; returns why it ran (and succeeded), or None."""
        with self._lock:
            report = self._pending
        if report is None or self.stats.disabled:
            return None
        now = self._clock()
        key = unhealthy_key(report)
        if self._retry_at is not None:
            if now < self._retry_at:
                return None
            why = "retry after an error"
        elif key != self._last_key:
            why = "first round" if self._last_key is None else "unhealthy GPUs changed"
        elif self._next_resync is not None and now >= self._next_resync:
            why = "resync"
        else:
            return None
        try:
            self.reconcile(report)
        except NotServed as exc:
            self._disable(f"device taints off: the cluster does not serve {exc}")
            return None
        except Exception as exc:  # ApiError above all; whatever it is, retry, never exit
            self._failed(exc)
            return None
        if self._retry_at is not None:
            log.info("device taints reconciled again after %d failures", self.backoff.failures)
        self._retry_at = None
        self.backoff.reset()
        self._last_key = key
        self._next_resync = self._clock() + self.resync_seconds
        self._update(rounds=self.stats.rounds + 1)
        return why

    def reconcile(self, report: NodeReport) -> None:
        """One round: make this node's rules what the report and slices call for. Raises
        NotServed when a list is answered 404 (the API is not served)."""
        timeout = self.timeout_seconds
        try:
            slices = api.list_resource_slices(self.kube, self.node_name, timeout_seconds=timeout)
        except NotFound as exc:
            raise NotServed(f"{dra.GROUP_VERSION} ResourceSlices ({exc})") from exc
        try:
            rules = api.list_device_taint_rules(
                self.kube, taints.node_selector(self.node_name), timeout_seconds=timeout
            )
        except NotFound as exc:
            raise NotServed(f"{dra.GROUP_VERSION} DeviceTaintRules ({exc})") from exc
        prefix = taints.name_prefix(self.node_name)
        existing = {
            str(r["metadata"]["name"]): r
            for r in rules
            if str(r.get("metadata", {}).get("name", "")).startswith(prefix)
        }
        self._held = set(existing)
        self._update(held=len(self._held))
        devices = self._devices(slices)
        wanted = taints.wanted_taints(report, devices, node=self.node_name, drivers=self.drivers)
        for name, taint in sorted(wanted.items()):
            desired = taints.rule_object(taint, node=self.node_name, effect=self.effect)
            self._ensure(desired, existing.get(name), taint)
        for name in taints.unwanted(existing, wanted, report, devices):
            self._delete(name, existing[name])

    def _devices(self, slices: list[dict[str, Any]]) -> list[dra.SliceDevice]:
        devices = []
        for resource_slice in slices:
            try:
                devices += dra.slice_devices(resource_slice)
            except FieldError as exc:  # one driver's bad slice must not stop the others
                log.debug("skipping a ResourceSlice that does not read: %s", exc)
        return devices

    def _ensure(
        self, desired: dict[str, Any], current: dict[str, Any] | None, taint: taints.WantedTaint
    ) -> None:
        name, timeout = desired["metadata"]["name"], self.timeout_seconds
        if current is None:
            try:
                api.create_device_taint_rule(self.kube, desired, timeout_seconds=timeout)
            except Conflict:  # made meanwhile (a create that timed out), or without our label
                current = api.get_device_taint_rule(self.kube, name, timeout_seconds=timeout)
            else:
                self._hold(name)
                log.warning(
                    "tainted DRA device %s/%s/%s (GPU %s, %s): DeviceTaintRule %s, %s",
                    *taint.device.key,
                    taint.gpu_uuid,
                    taint.value,
                    name,
                    self.effect,
                )
                return
        if not taints.up_to_date(current, desired):
            api.update_device_taint_rule(
                self.kube, taints.updated(current, desired), timeout_seconds=timeout
            )
            log.info("updated DeviceTaintRule %s (%s, %s)", name, taint.value, self.effect)
        self._hold(name)

    def _delete(self, name: str, rule: dict[str, Any]) -> None:
        uid = rule.get("metadata", {}).get("uid")
        try:
            api.delete_device_taint_rule(
                self.kube, name, uid=uid, timeout_seconds=self.timeout_seconds
            )
        except NotFound:  # gone already
            pass
        else:
            log.info("removed DeviceTaintRule %s: its GPU is healthy or no longer published", name)
        self._held.discard(name)
        self._update(held=len(self._held))

    def _hold(self, name: str) -> None:
        self._held.add(name)
        self._update(held=len(self._held))

    def _update(self, **changes: Any) -> None:
        with self._lock:
            self._stats = replace(self._stats, **changes)

    def _disable(self, reason: str) -> None:
        log.warning("%s", reason)
        self._update(disabled=reason)
        self.worker.wake()

    def _failed(self, exc: Exception) -> None:
        delay = self.backoff.next_delay()
        self._retry_at = self._clock() + delay
        with self._lock:
            self._stats = replace(self._stats, errors=self._stats.errors + 1, last_error=str(exc))
        log.warning("reconciling device taints failed (%s); retrying in %.1fs", exc, delay)
