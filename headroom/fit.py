"""GPU accounting: does a pod fit a node, how good is the node, and which GPUs would it get.

`fit`, `score` and `place` are pure functions of (pod demand, node snapshot, now). The extender's
filter and the scaler's feasibility both call them, so they never disagree. The accounting is
DESIGN.md's:

- exclusive mode: a GPU is free when healthy, held by no pod, and its free memory covers the need;
- shared mode: committed(g) = sum over pods on g of max(declared, used) + unattributed use, and
  free(g) = total - committed(g);
- pods bound to the node that the report does not show yet are claims: with assigned GPUs they
  add to those GPUs, without they hold that many whole GPUs, assumed (worst case) the best ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from headroom.demand import GpuDemand
from headroom.quantity import format_bytes
from headroom.state import GpuState, NodeReport


class Policy(StrEnum):
    BINPACK = "binpack"  # fill the fullest node (and GPU) that fits: keeps big holes for big pods
    SPREAD = "spread"  # use the emptiest: spreads load and blast radius


MAX_SCORE = 10


@dataclass(frozen=True)
class PodClaim:
    """A pod bound (or being bound) to a node, as Headroom knows it from the pod itself."""

    uid: str
    demand: GpuDemand
    gpu_uuids: tuple[str, ...] = ()  # assigned at bind; empty when the device plugin chooses


@dataclass(frozen=True)
class NodeSnapshot:
    """A node as fit sees it: its latest report and the pods Headroom knows are bound to it."""

    name: str
    report: NodeReport | None
    claims: tuple[PodClaim, ...] = ()


@dataclass(frozen=True)
class Fit:
    """The pod fits. `gpu_uuids` are the GPUs `place` would give it, in policy order."""

    gpu_uuids: tuple[str, ...]


@dataclass(frozen=True)
class Reason:
    """Why a pod does not fit a node, in words a person can act on."""

    message: str
    resolvable: bool = True  # False: no GPU on the node could ever hold the pod
    best_free_bytes: int = 0


@dataclass(frozen=True)
class GpuLedger:
    """One GPU's accounts after adding everything the report and the claims say."""

    gpu: GpuState
    committed_bytes: int
    held_whole: bool  # an exclusive pod (or a pod Headroom does not know) holds the GPU
    shared_pods: int

    @property
    def usable(self) -> bool:
        return self.gpu.healthy and not self.held_whole

    @property
    def free_bytes(self) -> int:
        return max(0, self.gpu.total_bytes - self.committed_bytes) if self.usable else 0

    @property
    def empty(self) -> bool:
        """Nothing on it: what a whole-GPU (exclusive) pod needs."""
        return self.usable and self.shared_pods == 0


def ledger(snapshot: NodeSnapshot) -> tuple[list[GpuLedger], int]:
    """Per-GPU accounts for a node, and how many whole GPUs unplaced claims still hold."""
    report = snapshot.report
    if report is None:
        return [], 0
    claims = {c.uid: c for c in snapshot.claims}
    books: dict[str, GpuLedger] = {}
    for gpu in report.gpus:
        committed, held, shared = gpu.unattributed_bytes, False, 0
        for pod in gpu.pods:
            claim = claims.get(pod.uid)
            if claim is not None and claim.demand.shared:
                committed += max(claim.demand.memory_bytes, pod.used_bytes)
                shared += 1
            else:  # an exclusive pod, or one Headroom does not know: it holds the whole GPU
                committed += pod.used_bytes
                held = True
        books[gpu.uuid] = GpuLedger(gpu, max(committed, gpu.used_bytes), held, shared)
    whole_gpus_held = 0
    for claim in snapshot.claims:
        seen_on = {g.uuid for g in report.gpus if any(p.uid == claim.uid for p in g.pods)}
        if not claim.gpu_uuids:
            whole_gpus_held += max(0, claim.demand.gpu_count - len(seen_on))
            continue
        for uuid in claim.gpu_uuids:
            book = books.get(uuid)
            if book is None or uuid in seen_on:
                continue  # a GPU the node no longer has, or the report already counts the pod
            books[uuid] = _add_claim(book, claim.demand)
    return list(books.values()), whole_gpus_held


def _add_claim(book: GpuLedger, demand: GpuDemand) -> GpuLedger:
    if demand.shared:
        return replace(book, committed_bytes=book.committed_bytes + demand.memory_bytes,
                       shared_pods=book.shared_pods + 1)
    return replace(book, held_whole=True)


def _can_hold(book: GpuLedger, demand: GpuDemand) -> bool:
    if demand.shared:
        return book.usable and book.free_bytes >= demand.memory_bytes
    return book.empty and book.free_bytes >= demand.memory_bytes


def _available(snapshot: NodeSnapshot) -> tuple[list[GpuLedger], list[GpuLedger]]:
    """All GPU accounts, and those left after unplaced claims take the best empty GPUs."""
    books, whole_gpus_held = ledger(snapshot)
    empty_best_first = sorted((b for b in books if b.empty), key=lambda b: -b.free_bytes)
    taken = {b.gpu.uuid for b in empty_best_first[:whole_gpus_held]}
    return books, [b for b in books if b.gpu.uuid not in taken]


def _freshness(snapshot: NodeSnapshot, *, now_unix_seconds: float,
               staleness_seconds: float) -> Reason | None:
    report = snapshot.report
    if report is None:
        return Reason("no GPU report")
    age_seconds = report.age_seconds(now_unix_seconds)
    if age_seconds > staleness_seconds:
        return Reason(f"GPU report {age_seconds:.0f}s old (stale after {staleness_seconds:.0f}s)")
    if not report.healthy:
        return Reason(f"GPUs unreadable on the node: {report.reason or 'no reason given'}")
    return None


def fit(demand: GpuDemand, snapshot: NodeSnapshot, *, now_unix_seconds: float,
        staleness_seconds: float, policy: Policy = Policy.BINPACK) -> Fit | Reason:
    """Whether `demand` fits `snapshot` now; a Fit lists the GPUs `place` would choose."""
    stale = _freshness(snapshot, now_unix_seconds=now_unix_seconds,
                       staleness_seconds=staleness_seconds)
    if stale is not None:
        return stale
    books, available = _available(snapshot)
    candidates = [b for b in available if _can_hold(b, demand)]
    if len(candidates) >= demand.gpu_count:
        # binpack: the tightest GPUs that still fit; spread: the roomiest.
        sign = 1 if policy is Policy.BINPACK else -1
        ordered = sorted(candidates, key=lambda b: (sign * b.free_bytes, b.gpu.index))
        return Fit(tuple(b.gpu.uuid for b in ordered[: demand.gpu_count]))
    return _reason(demand, books, candidates)


def _reason(demand: GpuDemand, books: Sequence[GpuLedger],
            candidates: Sequence[GpuLedger]) -> Reason:
    need = f"needs {demand.describe()}"
    big_enough = [b for b in books if b.gpu.total_bytes >= demand.memory_bytes]
    if len(big_enough) < demand.gpu_count:
        largest = max((b.gpu.total_bytes for b in books), default=0)
        return Reason(f"{need}; the node has {len(books)} GPUs, the largest "
                      f"{format_bytes(largest)}", resolvable=False)
    usable = [b for b in books if b.usable]
    best = max(usable, key=lambda b: (b.free_bytes, -b.gpu.index), default=None)
    best_free_bytes = best.free_bytes if best is not None else 0
    parts = [need]
    if demand.gpu_count > 1 and candidates:
        parts.append(f"only {len(candidates)} GPUs have room")
    if best is None:
        unhealthy = sum(not b.gpu.healthy for b in books)
        held = sum(b.gpu.healthy and b.held_whole for b in books)
        counts = [f"{n} {what}" for n, what in ((held, "held by pods"), (unhealthy, "unhealthy"))
                  if n]
        parts.append(f"every GPU is taken ({', '.join(counts)})")
    elif not demand.shared and not any(b.empty for b in usable) and not candidates:
        parts.append(f"all {len(usable)} usable GPUs hold shared pods")
    else:
        parts.append(f"best free {format_bytes(best.free_bytes)} on GPU {best.gpu.index} "
                     f"({best.gpu.uuid})")
    return Reason("; ".join(parts), best_free_bytes=best_free_bytes)


def fullness(snapshot: NodeSnapshot) -> float:
    """Committed fraction of the node's healthy GPU memory (claims included), 0.0 .. 1.0."""
    books, available = _available(snapshot)
    healthy = [b for b in books if b.gpu.healthy]
    total = sum(b.gpu.total_bytes for b in healthy)
    if total == 0:
        return 1.0
    free = sum(b.free_bytes for b in available)
    return min(1.0, max(0.0, 1.0 - free / total))


def score(snapshot: NodeSnapshot, *, policy: Policy) -> int:
    """0..10 for a node that fits: binpack favours the fullest node, spread the emptiest."""
    packed = round(MAX_SCORE * fullness(snapshot))
    return packed if policy is Policy.BINPACK else MAX_SCORE - packed


@dataclass(frozen=True)
class Placement:
    node_name: str
    gpu_uuids: tuple[str, ...]


def place(demand: GpuDemand, snapshots: Iterable[NodeSnapshot], *, now_unix_seconds: float,
          staleness_seconds: float, policy: Policy = Policy.BINPACK) -> Placement | None:
    """The node and GPUs the scheduler with this extender would pick, or None if none fits.

    Ties between equal scores go to the node name that sorts first, so placement is repeatable.
    """
    best: tuple[int, str, Fit] | None = None
    for snapshot in snapshots:
        verdict = fit(demand, snapshot, now_unix_seconds=now_unix_seconds,
                      staleness_seconds=staleness_seconds, policy=policy)
        if not isinstance(verdict, Fit):
            continue
        key = (-score(snapshot, policy=policy), snapshot.name, verdict)
        if best is None or key[:2] < best[:2]:
            best = key
    return None if best is None else Placement(best[1], best[2].gpu_uuids)


def with_claim(snapshot: NodeSnapshot, claim: PodClaim) -> NodeSnapshot:
    """The snapshot after binding one more pod to the node."""
    return replace(snapshot, claims=(*snapshot.claims, claim))


def place_replicas(demand: GpuDemand, count: int, snapshots: Sequence[NodeSnapshot], *,
                   now_unix_seconds: float, staleness_seconds: float,
                   policy: Policy = Policy.BINPACK,
                   uid_prefix: str = "replica") -> tuple[list[Placement], list[NodeSnapshot]]:
    """Place up to `count` copies of one pod one after another, each seeing the ones before.

    Returns the placements made (fewer than `count` when the cluster fills) and the snapshots
    with their claims, for the scaler's "how many more replicas fit".
    """
    by_name = {s.name: s for s in snapshots}
    placements: list[Placement] = []
    for i in range(count):
        placement = place(demand, by_name.values(), now_unix_seconds=now_unix_seconds,
                          staleness_seconds=staleness_seconds, policy=policy)
        if placement is None:
            break
        placements.append(placement)
        claim = PodClaim(f"{uid_prefix}-{i}", demand, placement.gpu_uuids)
        by_name[placement.node_name] = with_claim(by_name[placement.node_name], claim)
    return placements, list(by_name.values())
