"""The cluster's GPU view: per node, the latest GPUNode report and the pods that hold its GPUs.

Fed by the watch caches of GPUNode, Node and Pod (any source of watch events works, which is how
the tests drive it), plus the extender's own in-flight binds. `snapshot(node)` is the input of the
pure `fit` / `score` / `place`. A reservation (a claim the report does not show yet) is a pod bound
to the node, or being bound by this extender; it ends when the report shows the pod (fit ignores
claims it can see), when the pod is deleted or finishes, or, for an in-flight bind that never
reached the API, after a time limit. Since every bound pod is a claim, a restarted extender
rebuilds the same view from the cluster: no GPU is committed twice across restarts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from extender.dracache import DraCache
from headroom.demand import DemandError
from headroom.fit import NodeSnapshot, NodeSummary, PodClaim, summarize
from headroom.ledger import bound_node
from headroom.ledger import claim_of as ledger_claim_of
from headroom.names import GPU_RESOURCE
from headroom.podclaims import NO_LOOKUPS, DraLookups, has_claims
from headroom.report import NodeReport, ReportError, report_from_status, with_taints
from kubeapi.cache import DELETED, WatchEvent

log = logging.getLogger(__name__)

# Called with (node name, what happened) when memory may have been freed on a node.
HeadroomListener = Callable[[str, str], None]


@dataclass(frozen=True)
class PodRef:
    uid: str
    namespace: str
    name: str


def pod_ref(pod: dict[str, Any]) -> PodRef:
    meta = pod.get("metadata") or {}
    return PodRef(
        str(meta.get("uid", "")), str(meta.get("namespace", "")), str(meta.get("name", ""))
    )


def claim_of(pod: dict[str, Any], dra: DraLookups = NO_LOOKUPS) -> PodClaim | None:
    """The GPUs a pod holds (or will), by the shared ledger; unreadable requests are logged."""
    return ledger_claim_of(pod, dra=dra, on_unreadable=_log_unreadable)


def _log_unreadable(uid: str, exc: DemandError) -> None:
    log.warning("pod %s: %s; counting it as one whole GPU", uid, exc)


class Recent:
    """The nodes a filter asked about, and their summaries then, for the prioritize after it.

    The scheduler sends prioritize the nodes filter has just passed: the same list, or part of
    it. Reading those summaries from the list the filter has just walked spares a lookup per node
    in the view's dictionaries, cold by then (bench/extender.py). The view forgets this when one
    of the nodes changes.
    """

    def __init__(self, node_names: list[str], found: list[NodeSummary]) -> None:
        self.names = node_names
        self.found = found
        self._index: dict[str, int] | None = None  # made when first asked for part of the list

    def among(self, node_names: Sequence[str]) -> list[NodeSummary] | None:
        """The summaries of `node_names` if they are among these names; None otherwise."""
        if node_names == self.names:
            return list(self.found)
        if self._index is None:
            self._index = {name: i for i, name in enumerate(self.names)}
        try:
            return [self.found[self._index[name]] for name in node_names]
        except KeyError:
            return None


class ClusterView:
    """Thread-safe; every method may be called from any thread."""

    def __init__(
        self,
        *,
        inflight_ttl_seconds: float = 120.0,
        monotonic: Callable[[], float] = time.monotonic,
        dra: DraCache | None = None,
    ) -> None:
        self._lock = threading.RLock()
        # DRA: pods with ResourceClaims are kept as objects and read when their node's snapshot
        # is built, since their GPUs change with their claims' allocation, not with the pod.
        self.dra = dra or DraCache()
        self.dra.on_change = self.touch_nodes
        self._dra_pods: dict[str, dict[str, dict[str, Any]]] = {}
        # GPUs the DRA allocator chose and bind refused: node -> uuid -> the GPU's holders then.
        self._misses: dict[str, dict[str, tuple[bool, int]]] = {}
        self._reports: dict[str, NodeReport] = {}
        self._report_errors: dict[str, str] = {}
        self._unschedulable: set[str] = set()
        self._nodes: set[str] = set()
        self._node_labels: dict[str, dict[str, str]] = {}
        self._no_device_plugin: set[str] = set()  # allocatable known, with no nvidia.com/gpu
        self._pod_node: dict[str, str] = {}
        self._claims: dict[str, dict[str, PodClaim]] = {}
        self._inflight: dict[str, tuple[str, PodClaim, float]] = {}
        self._snapshots: dict[str, NodeSnapshot] = {}
        self._summaries: dict[str, NodeSummary] = {}
        self._recent: Recent | None = None
        self._touched_since_recent: set[str] = set()
        self._next_expiry = float("inf")
        self._inflight_ttl_seconds = inflight_ttl_seconds
        self._monotonic = monotonic
        self.listeners: list[HeadroomListener] = []

    # -- reading ---------------------------------------------------------------------------------
    def snapshot(self, node_name: str) -> NodeSnapshot:
        with self._lock:
            if self._monotonic() >= self._next_expiry:
                self._expire_inflight()
            cached = self._snapshots.get(node_name)
            if cached is None:
                cached = self._snapshots[node_name] = self._build_snapshot(node_name)
            return cached

    def _build_snapshot(self, node_name: str) -> NodeSnapshot:
        claims = {
            c.uid: c for c in self.dra.allocations(node_name, bound=self._pod_node.__contains__)
        }
        claims.update(self._claims.get(node_name, {}))
        lookups = self.dra.lookups()
        for uid, pod in self._dra_pods.get(node_name, {}).items():
            claim = claim_of(pod, lookups)
            if claim is None:
                claims.pop(uid, None)
            else:
                claims[uid] = claim
        for uid, (node, claim, _) in self._inflight.items():
            if node == node_name and uid not in claims:
                claims[uid] = claim
        report = self._reports.get(node_name)
        tainted = self.dra.tainted()
        if report is not None and tainted:
            report = with_taints(report, tainted)
        return NodeSnapshot(node_name, report, tuple(claims.values()))

    def summary(self, node_name: str) -> NodeSummary:
        """The node's accounting, computed once per change (what the verbs ask per request)."""
        with self._lock:
            if self._monotonic() >= self._next_expiry:
                self._expire_inflight()
            found = self._summaries.get(node_name)
            if found is None:
                found = self._summaries[node_name] = summarize(self.snapshot(node_name))
            return found

    def summaries(
        self, node_names: Sequence[str], *, after_filter: bool = False
    ) -> tuple[list[NodeSummary], dict[str, str]]:
        """Summaries of many nodes, in order, and the report errors of those that have one, under
        one lock (a verb's whole request). `after_filter`: these nodes are likely among those the
        last request (a filter) asked about, whose summaries are at hand unless they changed."""
        with self._lock:
            if self._monotonic() >= self._next_expiry:
                self._expire_inflight()
            found = self._remembered(node_names) if after_filter else None
            if found is None:
                cached = self._summaries.get
                found = [cached(n) or self.summary(n) for n in node_names]
                self._recent, self._touched_since_recent = Recent(list(node_names), found), set()
            errors = self._report_errors
            return found, {n: errors[n] for n in node_names if n in errors} if errors else {}

    def _remembered(self, node_names: Sequence[str]) -> list[NodeSummary] | None:
        """The summaries the last request read, if these nodes are among them and unchanged."""
        touched = self._touched_since_recent
        if self._recent is None or (touched and not touched.isdisjoint(node_names)):
            return None
        return self._recent.among(node_names)

    def report(self, node_name: str) -> NodeReport | None:
        """The node's report as its agent wrote it (device taints not applied: a NoSchedule
        taint keeps new claims off a GPU, it does not make the pods on it unready)."""
        with self._lock:
            return self._reports.get(node_name)

    def report_error(self, node_name: str) -> str | None:
        """Why the node's GPUNode could not be read, if it could not."""
        with self._lock:
            return self._report_errors.get(node_name)

    def report_times(self) -> dict[str, float]:
        """When each node's readable report was sampled (unix seconds), for /metrics."""
        with self._lock:
            return {n: r.reported_at_unix_seconds for n, r in self._reports.items()}

    def summarize_all(self) -> None:
        """Make every known node's summary now, as the first requests would (then the extender
        freezes them with the rest of the view: bench/extender.py)."""
        with self._lock:
            for name in self._nodes | self._reports.keys():
                self.summary(name)

    def schedulable_nodes(self) -> list[str]:
        """Nodes that exist, are not cordoned and have a GPU report: where replicas could go."""
        with self._lock:
            return sorted(
                n for n in self._nodes if n in self._reports and n not in self._unschedulable
            )

    def offers_device_plugin_gpus(self, node_name: str) -> bool:
        """False for a node whose allocatable lists no `nvidia.com/gpu` (a DRA-only node)."""
        with self._lock:
            return node_name not in self._no_device_plugin

    def node_labels(self, node_name: str) -> dict[str, str]:
        """The node's labels (for the scaler: where a workload's replicas may go)."""
        with self._lock:
            return self._node_labels.get(node_name, {})

    def reservations(self) -> int:
        """Claims no report shows yet, in-flight binds included (for /metrics)."""
        with self._lock:
            count = 0
            for node in (
                set(self._claims) | set(self._dra_pods) | {n for n, _, _ in self._inflight.values()}
            ):
                snapshot = self.snapshot(node)
                seen = snapshot.report.pod_uids if snapshot.report else frozenset()
                count += sum(c.uid not in seen for c in snapshot.claims)
            return count

    def inflight(self, pod_uid: str) -> tuple[str, PodClaim] | None:
        with self._lock:
            entry = self._inflight.get(pod_uid)
            return None if entry is None else (entry[0], entry[1])

    # -- DRA: the allocator's refused choices ---------------------------------------------------
    def record_miss(self, node_name: str, gpu_uuid: str, holders: tuple[bool, int]) -> None:
        """Bind refused the GPU the DRA allocator chose: `holders` is (held whole, shared pods)
        on it then. While those stay the same the allocator would choose it again."""
        with self._lock:
            self._misses.setdefault(node_name, {})[gpu_uuid] = holders
            self._touch(node_name)

    def misses(self, node_name: str) -> dict[str, tuple[bool, int]]:
        with self._lock:
            return dict(self._misses.get(node_name, {}))

    def forget_miss(self, node_name: str, gpu_uuid: str) -> None:
        with self._lock:
            self._misses.get(node_name, {}).pop(gpu_uuid, None)

    def touch_nodes(self, node_names: Iterable[str]) -> None:
        """Claims or devices on these nodes changed (the DRA cache's events)."""
        names = list(node_names)
        with self._lock:
            for name in names:
                self._touch(name)
        for name in names:
            self._notify(name, "DRA claims or devices changed")

    # -- in-flight binds ---------------------------------------------------------------------------
    def reserve(self, node_name: str, claim: PodClaim) -> None:
        with self._lock:
            expires = self._monotonic() + self._inflight_ttl_seconds
            self._inflight[claim.uid] = (node_name, claim, expires)
            self._next_expiry = min(self._next_expiry, expires)
            self._touch(node_name)

    def release(self, pod_uid: str) -> None:
        with self._lock:
            entry = self._inflight.pop(pod_uid, None)
            if entry is not None:
                self._touch(entry[0])

    def _expire_inflight(self) -> None:
        now = self._monotonic()
        for uid in [u for u, (_, _, expires) in self._inflight.items() if expires <= now]:
            node, _, _ = self._inflight.pop(uid)
            self._touch(node)
            self._notify(node, "an in-flight bind expired")
        self._next_expiry = min((e for _, _, e in self._inflight.values()), default=float("inf"))

    # -- watch events ------------------------------------------------------------------------------
    def apply_gpunode(self, event: WatchEvent) -> None:
        name = str(event.object.get("metadata", {}).get("name", ""))
        with self._lock:
            before = self._reports.get(name)
            if event.type == DELETED:
                self._reports.pop(name, None)
                self._report_errors.pop(name, None)
            else:
                self._read_report(name, event.object)
            self._touch(name)
            after = self._reports.get(name)
        if after is not None and _freed(before, after):
            self._notify(name, "its GPU report shows more free memory")

    def _read_report(self, name: str, obj: dict[str, Any]) -> None:
        status = obj.get("status")
        if not status:
            self._reports.pop(name, None)
            self._report_errors.pop(name, None)
            return
        try:
            self._reports[name] = report_from_status(name, status)
            self._report_errors.pop(name, None)
        except ReportError as exc:
            self._reports.pop(name, None)
            self._report_errors[name] = f"GPU report unreadable: {exc}"

    def apply_node(self, event: WatchEvent) -> None:
        name = str(event.object.get("metadata", {}).get("name", ""))
        with self._lock:
            if event.type == DELETED:
                self._nodes.discard(name)
                self._unschedulable.discard(name)
                self._node_labels.pop(name, None)
                self._no_device_plugin.discard(name)
                return
            self._nodes.add(name)
            allocatable = (event.object.get("status") or {}).get("allocatable")
            if isinstance(allocatable, dict) and str(allocatable.get(GPU_RESOURCE, "0")) == "0":
                self._no_device_plugin.add(name)
            else:
                self._no_device_plugin.discard(name)
            labels = (event.object.get("metadata") or {}).get("labels") or {}
            self._node_labels[name] = {str(k): str(v) for k, v in labels.items()}
            if (event.object.get("spec") or {}).get("unschedulable"):
                self._unschedulable.add(name)
            else:
                self._unschedulable.discard(name)

    def apply_pod(self, event: WatchEvent) -> None:
        pod = event.object
        uid = pod_ref(pod).uid
        node = bound_node(pod)
        alive = event.type != DELETED and bool(node)
        with_claims = alive and has_claims(pod)
        claim = claim_of(pod) if alive and not with_claims else None
        with self._lock:
            old_node = self._pod_node.pop(uid, None)
            if old_node is not None:
                self._claims.get(old_node, {}).pop(uid, None)
                self._dra_pods.get(old_node, {}).pop(uid, None)
                self._touch(old_node)
            if with_claims:
                self._pod_node[uid] = node
                self._dra_pods.setdefault(node, {})[uid] = pod
                self._touch(node)
            elif claim is not None:
                self._pod_node[uid] = node
                self._claims.setdefault(node, {})[uid] = claim
                self._touch(node)
            if event.type == DELETED or node:
                self._inflight.pop(uid, None)  # the pod is gone, or its Binding landed
        if old_node is not None and claim is None and not with_claims:
            self._notify(old_node, "a pod holding GPUs went away")

    def _touch(self, node_name: str) -> None:
        self._snapshots.pop(node_name, None)
        self._summaries.pop(node_name, None)
        if self._recent is not None:
            self._touched_since_recent.add(node_name)

    def _notify(self, node_name: str, why: str) -> None:
        for listener in list(self.listeners):
            try:
                listener(node_name, why)
            except Exception:  # a listener's failure must not break the view
                log.exception("headroom listener failed")

    def load(
        self,
        *,
        gpunodes: Iterable[dict[str, Any]],
        nodes: Iterable[dict[str, Any]],
        pods: Iterable[dict[str, Any]],
    ) -> None:
        """Fill the view from lists of objects (tests and benchmarks)."""
        for obj in nodes:
            self.apply_node(WatchEvent("ADDED", obj))
        for obj in gpunodes:
            self.apply_gpunode(WatchEvent("ADDED", obj))
        for obj in pods:
            self.apply_pod(WatchEvent("ADDED", obj))


def _freed(before: NodeReport | None, after: NodeReport) -> bool:
    """Whether the new report could fit something the old one could not."""
    if before is None:
        return True
    old = {g.uuid: g for g in before.gpus}
    for gpu in after.gpus:
        prior = old.get(gpu.uuid)
        if prior is None or (gpu.healthy and not prior.healthy):
            return True
        if gpu.free_bytes > prior.free_bytes or len(gpu.pods) < len(prior.pods):
            return True
    return after.healthy and not before.healthy
