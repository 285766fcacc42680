"""Fast retry: pods the scheduler parked after the extender turned them away are retried as soon as
headroom can place them, and as soon as this extender starts acting.

How kube-scheduler (1.32 and later, QueueingHints) treats such a pod: an extender rejection is
recorded as the fake plugin `Extender`, whose hint queues the pod again on any cluster event the
scheduler watches. A GPUNode report is not one of those, so freed GPU memory alone never moves the
pod: it waits for an unrelated event or for the unschedulable-pod flush after 5 minutes. The event
the requeuer makes is an update of the parked pod itself (the `headroom.dev/retry-after-headroom`
annotation), which requeues that pod after its backoff (`podMaxBackoffSeconds`).

Which pods: every unbound pod of the headroom scheduler whose PodScheduled condition says
Unschedulable, read from the pod cache. So pods parked by an earlier extender process, while this
one stood by, or for a reason other than memory (a stale report, a lost GPU) are retried too.
When: on news of headroom, when this extender starts leading (once its caches are synced), when a
pod is parked, and on a slow sweep. How many: only the pods the current headroom can place,
simulated one after another in the scheduler's queue order (priority, then age). When 200 pods
wait for room that holds 3, three pods are written, not 200; a Node update would wake all 200 with
one write, but needs the right to patch Nodes and sends every parked pod of every profile back
through scheduling (see docs/components/extender.md, "Fast retry").

Each pass also notes the parked pods the headroom cannot place, with when each was first refused
(`waiting_since`), which /metrics shows as the pods waiting for GPU memory.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from extender import api
from extender.scaler.eligibility import node_matches
from extender.verbs import pod_demand
from extender.view import ClusterView, PodRef, pod_ref
from headroom import names
from headroom.clock import parse_time
from headroom.demand import DemandError, GpuDemand
from headroom.fields import FieldError
from headroom.fit import NodeSnapshot, PodClaim, Policy, place, with_claim
from headroom.podclaims import NO_LOOKUPS, DraLookups
from headroom.worker import Worker
from kubeapi.client import ApiError, KubeApi

log = logging.getLogger(__name__)

JsonDict = dict[str, Any]


@dataclass(frozen=True)
class Parked:
    """A pod the scheduler holds as unschedulable, with what it needs and where it may go."""

    pod: PodRef
    demand: GpuDemand
    spec: Mapping[str, Any]  # nodeSelector and affinity decide its nodes
    priority: int = 0
    created: str = ""  # RFC 3339; sorts as time
    refused: str = ""  # RFC 3339: when PodScheduled turned False (its first refusal), if known

    @property
    def queue_order(self) -> tuple[int, str, str]:
        return (-self.priority, self.created, self.pod.uid)


def parked_pods(
    pods: Iterable[Mapping[str, Any]], *, scheduler_name: str, dra: DraLookups = NO_LOOKUPS
) -> list[Parked]:
    """The pods of `scheduler_name` that are unbound, alive, ask for GPUs, and whose PodScheduled
    condition is False for Unschedulable, in the scheduler's queue order."""
    found = []
    for pod in pods:
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        if (
            spec.get("nodeName")
            or spec.get("schedulerName") != scheduler_name
            or meta.get("deletionTimestamp")
        ):
            continue
        status = pod.get("status") or {}
        refusal = _unschedulable(status)
        if status.get("phase") not in (None, "Pending") or refusal is None:
            continue
        try:
            demand = pod_demand(pod, dra)[0]
        except DemandError:
            continue  # the filter refuses it with that message; retrying cannot help
        if demand is None:
            continue
        found.append(
            Parked(
                pod_ref(dict(pod)),
                demand,
                spec,
                priority=int(spec.get("priority") or 0),
                created=str(meta.get("creationTimestamp") or ""),
                refused=str(refusal.get("lastTransitionTime") or ""),
            )
        )
    return sorted(found, key=lambda p: p.queue_order)


def _unschedulable(status: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The PodScheduled condition when it is False for Unschedulable, else None."""
    for c in status.get("conditions") or []:
        if (
            isinstance(c, Mapping)
            and c.get("type") == "PodScheduled"
            and c.get("status") == "False"
            and c.get("reason") == "Unschedulable"
        ):
            return c
    return None


def pods_to_retry(
    parked: Sequence[Parked],
    nodes: Sequence[NodeSnapshot],
    *,
    labels: Mapping[str, Mapping[str, str]],
    now_unix_seconds: float,
    staleness_seconds: float,
    policy: Policy = Policy.BINPACK,
    in_flight: frozenset[str] = frozenset(),
) -> list[Parked]:
    """The parked pods that the nodes' headroom can place, placed one after another in queue
    order (each sees the ones before). Pods in `in_flight` (retried moments ago) take their place
    first and are not returned. Pure: a function of the pods and the node snapshots."""
    by_name = {n.name: n for n in nodes}
    failed: set[tuple[GpuDemand, str]] = set()  # a pod like one that found no room finds none
    chosen = []
    ordered = sorted(parked, key=lambda p: (p.pod.uid not in in_flight, p.queue_order))
    for entry in ordered:
        key = (entry.demand, repr(_placement_fields(entry.spec)))
        if key in failed:
            continue
        eligible = [
            s
            for s in by_name.values()
            if node_matches(entry.spec, node_name=s.name, labels=labels.get(s.name, {}))
        ]
        placement = place(
            entry.demand,
            eligible,
            now_unix_seconds=now_unix_seconds,
            staleness_seconds=staleness_seconds,
            policy=policy,
        )
        if placement is None:
            failed.add(key)
            continue
        claim = PodClaim(entry.pod.uid, entry.demand, placement.gpu_uuids)
        by_name[placement.node_name] = with_claim(by_name[placement.node_name], claim)
        if entry.pod.uid not in in_flight:
            chosen.append(entry)
    return chosen


def _placement_fields(spec: Mapping[str, Any]) -> tuple[object, object]:
    return spec.get("nodeSelector"), spec.get("affinity")


@dataclass
class RetryBook:
    """When each pod was last retried, and when headroom was last seen; decides who may be
    written again. A pod is retried again only after news of headroom since its last retry, or
    after `sweep_seconds`: a pod our view says fits but another plugin refuses is then written
    at most once per sweep, never in a loop with its own rejection."""

    sweep_seconds: float
    in_flight_seconds: float
    retried_at: dict[str, float] = field(default_factory=dict)
    headroom_at: float = 0.0

    def may_retry(self, uid: str, now: float) -> bool:
        last = self.retried_at.get(uid)
        return last is None or last < self.headroom_at or now - last >= self.sweep_seconds

    def in_flight(self, now: float) -> frozenset[str]:
        return frozenset(u for u, t in self.retried_at.items() if now - t < self.in_flight_seconds)

    def forget_all_but(self, uids: set[str]) -> None:
        for uid in set(self.retried_at) - uids:
            del self.retried_at[uid]


class Requeuer:
    def __init__(
        self,
        kube: KubeApi,
        view: ClusterView,
        *,
        pods: Callable[[], Iterable[JsonDict]],
        ready: Callable[[], bool],
        is_leader: Callable[[], bool],
        staleness_seconds: float,
        policy: Policy = Policy.BINPACK,
        debounce_seconds: float = 0.3,
        sweep_seconds: float = 30.0,
        in_flight_seconds: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.kube = kube
        self.view = view
        self.pods = pods
        self.ready = ready
        self.is_leader = is_leader
        self.staleness_seconds = staleness_seconds
        self.policy = policy
        self.debounce_seconds = debounce_seconds
        self.clock = clock
        self.book = RetryBook(sweep_seconds=sweep_seconds, in_flight_seconds=in_flight_seconds)
        self.nudged = 0
        self.passes = 0
        # Parked pods the last pass found no room for: uid -> first refusal (unix seconds).
        # Replaced whole, never changed in place: /metrics reads it from another thread.
        self.waiting_since: dict[str, float] = {}
        self.worker = Worker(self._run, name="requeue")
        view.listeners.append(self.on_headroom)

    # -- triggers --------------------------------------------------------------------------------
    def on_headroom(self, node_name: str, why: str) -> None:
        log.debug("headroom on %s: %s", node_name, why)
        self.book.headroom_at = self.clock()
        self.worker.wake()

    def on_leading(self, leading: bool) -> None:
        """News that arrived on standby was not acted on: look again once leading. On standby
        no pass runs, so the waiting pods are the leader's to tell."""
        if leading:
            self.book.headroom_at = self.clock()
            self.worker.wake()
        else:
            self.waiting_since = {}

    def on_parked(self) -> None:
        self.worker.wake()

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        self.worker.start()

    def stop(self, timeout_seconds: float = 5.0) -> None:
        self.worker.stop(timeout_seconds)

    def _run(self) -> None:
        self.worker.wake()  # a first pass once ready: pods may be parked from before this process
        stopped, woken = self.worker.stopped, self.worker.woken
        while not stopped.is_set():
            woken.wait(self.book.sweep_seconds)
            if stopped.wait(self.debounce_seconds):  # gather a burst of changes
                return
            woken.clear()
            while not self.ready() and not stopped.wait(0.5):
                pass  # a pass over half-synced caches would miss parked pods
            if self.is_leader():
                try:
                    self.retry_fitting()
                except Exception:
                    log.exception("requeue pass failed")

    # -- one pass --------------------------------------------------------------------------------
    def retry_fitting(self) -> int:
        """Touch the parked pods the headroom can place now; returns how many were touched."""
        now = self.clock()
        self.passes += 1
        parked = parked_pods(
            self.pods(), scheduler_name=names.SCHEDULER_NAME, dra=self.view.dra.lookups()
        )
        self.book.forget_all_but({p.pod.uid for p in parked})
        if not parked:
            self.waiting_since = {}
            return 0
        node_names = self.view.schedulable_nodes()
        in_flight = self.book.in_flight(now)
        chosen = pods_to_retry(
            parked,
            [self.view.snapshot(n) for n in node_names],
            labels={n: self.view.node_labels(n) for n in node_names},
            now_unix_seconds=now,
            staleness_seconds=self.staleness_seconds,
            policy=self.policy,
            in_flight=in_flight,
        )
        self._note_waiting(parked, fitting={p.pod.uid for p in chosen} | in_flight, now=now)
        touched = 0
        for entry in chosen:
            if self.book.may_retry(entry.pod.uid, now) and self._touch(entry.pod, now):
                self.book.retried_at[entry.pod.uid] = now
                touched += 1
        self.nudged += touched
        if touched:
            log.info("requeued %d of %d parked pods", touched, len(parked))
        return touched

    def _note_waiting(self, parked: Sequence[Parked], *, fitting: set[str], now: float) -> None:
        """The parked pods no GPU has room for now, with when each was first refused: the
        condition's time, else when a pass first saw it waiting."""
        before = self.waiting_since
        self.waiting_since = {
            p.pod.uid: _refused_at(p) or before.get(p.pod.uid) or now
            for p in parked
            if p.pod.uid not in fitting
        }

    def _touch(self, pod: PodRef, now: float) -> bool:
        body = {
            "metadata": {
                "uid": pod.uid,
                "annotations": {
                    # Milliseconds, so two retries within one second still change the pod.
                    names.RETRY_ANNOTATION: f"{now:.3f}"
                },
            }
        }
        try:
            api.patch_pod(self.kube, namespace=pod.namespace, name=pod.name, patch=body)
        except ApiError as exc:  # gone or replaced: nothing to retry
            log.info("cannot requeue %s/%s: %s", pod.namespace, pod.name, exc)
            return False
        return True


def _refused_at(parked: Parked) -> float | None:
    try:
        return parse_time(parked.refused, field="status.conditions[PodScheduled]")
    except FieldError:
        return None
