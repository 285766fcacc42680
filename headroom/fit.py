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

from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from math import nan

from headroom.demand import GpuDemand
from headroom.quantity import format_bytes
from headroom.report import GpuState, NodeReport, is_fresh, stale_reason


class Policy(StrEnum):
    BINPACK = "binpack"  # fill the fullest node (and GPU) that fits: keeps big holes for big pods
    SPREAD = "spread"  # use the emptiest: spreads load and blast radius


MAX_SCORE = 10


@dataclass(frozen=True)
class PodClaim:
    """A pod bound (or being bound) to a node, as Headroom knows it from the pod itself."""

    uid: str
    demand: GpuDemand
    # Known GPUs: assigned at bind (shared mode) or allocated to its ResourceClaims (DRA); empty
    # when the device plugin chooses.
    gpu_uuids: tuple[str, ...] = ()


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


class ReasonKind(StrEnum):
    MEMORY = "memory"  # not enough free GPU memory (or free GPUs) now: may change soon
    TOO_SMALL = "too-small"  # no GPU on the node is big enough: never fits
    NO_REPORT = "no-report"
    STALE = "stale"
    UNREADABLE = "unreadable"  # NVML cannot be read on the node


@dataclass(frozen=True)
class Reason:
    """Why a pod does not fit a node, in words a person can act on."""

    message: str
    resolvable: bool = True  # False: no GPU on the node could ever hold the pod
    best_free_bytes: int = 0
    kind: ReasonKind = ReasonKind.MEMORY


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
        known = set(claim.gpu_uuids)
        # GPUs the pod holds that no one named (the device plugin's, beside a claim's)
        whole_gpus_held += max(0, claim.demand.gpu_count - len(known) - len(seen_on - known))
        for uuid in claim.gpu_uuids:
            book = books.get(uuid)
            if book is None or uuid in seen_on:
                continue  # a GPU the node no longer has, or the report already counts the pod
            books[uuid] = _add_claim(book, claim.demand)
    return list(books.values()), whole_gpus_held


def _add_claim(book: GpuLedger, demand: GpuDemand) -> GpuLedger:
    if demand.shared:
        return replace(
            book,
            committed_bytes=book.committed_bytes + demand.memory_bytes,
            shared_pods=book.shared_pods + 1,
        )
    return replace(book, held_whole=True)


Candidate = tuple[int, int, str]  # (free bytes, GPU index, UUID)


@dataclass(frozen=True, slots=True)
class NodeSummary:
    """Everything `fit` and `score` need of a node, computed once per snapshot.

    A scheduler asks about thousands of nodes per pod; with the accounting done here once, each
    question is a bisection. `fit` itself goes through a summary, so there is one implementation.
    """

    report: NodeReport | None
    shared_candidates: tuple[Candidate, ...]  # usable GPUs left after pending claims, by free
    exclusive_candidates: tuple[Candidate, ...]  # the empty ones among them, by free
    shared_free: tuple[int, ...]  # the candidates' free bytes, for bisection
    exclusive_free: tuple[int, ...]
    totals_sorted: tuple[int, ...]
    best_usable: Candidate | None  # the most free memory on any usable GPU (lowest index first)
    unhealthy: int
    held: int  # healthy GPUs an exclusive (or unknown) pod holds whole
    usable: int
    any_empty: bool
    fullness: float  # committed fraction of healthy memory, claims included
    binpack_score: int  # round(MAX_SCORE * fullness), kept: it is asked for every request
    # For `fits`, which asks them of thousands of nodes per pod: fewer objects to read per node.
    # The report's time when there is a healthy report, else NaN (no `now - NaN <= staleness`
    # holds); the most free memory of each pool's candidates, -1 when there is none.
    acting_since_unix_seconds: float
    shared_most_free: int
    exclusive_most_free: int


def summarize(snapshot: NodeSnapshot) -> NodeSummary:
    books, whole_gpus_held = ledger(snapshot)
    empty_best_first = sorted((b for b in books if b.empty), key=lambda b: -b.free_bytes)
    taken = {b.gpu.uuid for b in empty_best_first[:whole_gpus_held]}
    available = [b for b in books if b.gpu.uuid not in taken]
    usable = [b for b in books if b.usable]
    healthy_total = sum(b.gpu.total_bytes for b in books if b.gpu.healthy)
    free_total = sum(b.free_bytes for b in available)
    # The best a reason can offer is a GPU no pending claim has taken: a GPU a starting pod
    # will hold whole is not free, however empty its report still shows it.
    best = max(
        (b for b in available if b.usable), key=lambda b: (b.free_bytes, -b.gpu.index), default=None
    )
    committed = 1.0 if healthy_total == 0 else min(1.0, max(0.0, 1 - free_total / healthy_total))

    def candidates(keep: Callable[[GpuLedger], bool]) -> tuple[Candidate, ...]:
        return tuple(sorted((b.free_bytes, b.gpu.index, b.gpu.uuid) for b in available if keep(b)))

    shared, exclusive = candidates(lambda b: b.usable), candidates(lambda b: b.empty)
    return NodeSummary(
        report=snapshot.report,
        shared_candidates=shared,
        exclusive_candidates=exclusive,
        shared_free=tuple(c[0] for c in shared),
        exclusive_free=tuple(c[0] for c in exclusive),
        totals_sorted=tuple(sorted(b.gpu.total_bytes for b in books)),
        best_usable=None if best is None else (best.free_bytes, best.gpu.index, best.gpu.uuid),
        unhealthy=sum(not b.gpu.healthy for b in books),
        held=sum(b.gpu.healthy and b.held_whole for b in books) + len(taken),
        usable=len(usable),
        any_empty=any(b.empty for b in available if b.usable),
        fullness=committed,
        binpack_score=round(MAX_SCORE * committed),
        acting_since_unix_seconds=(
            snapshot.report.reported_at_unix_seconds
            if snapshot.report is not None and snapshot.report.healthy
            else nan
        ),
        shared_most_free=shared[-1][0] if shared else -1,
        exclusive_most_free=exclusive[-1][0] if exclusive else -1,
    )


def freshness_reason(
    report: NodeReport | None, *, now_unix_seconds: float, staleness_seconds: float
) -> Reason | None:
    if report is None:
        return Reason("no GPU report", kind=ReasonKind.NO_REPORT)
    stale = stale_reason(
        report, now_unix_seconds=now_unix_seconds, staleness_seconds=staleness_seconds
    )
    if stale is not None:
        return Reason(stale, kind=ReasonKind.STALE)
    if not report.healthy:
        return Reason(
            f"GPUs unreadable on the node: {report.reason or 'no reason given'}",
            kind=ReasonKind.UNREADABLE,
        )
    return None


def fit(
    demand: GpuDemand,
    snapshot: NodeSnapshot,
    *,
    now_unix_seconds: float,
    staleness_seconds: float,
    policy: Policy = Policy.BINPACK,
) -> Fit | Reason:
    """Whether `demand` fits `snapshot` now; a Fit lists the GPUs `place` would choose."""
    return fit_summary(
        demand,
        summarize(snapshot),
        now_unix_seconds=now_unix_seconds,
        staleness_seconds=staleness_seconds,
        policy=policy,
    )


def fit_summary(
    demand: GpuDemand,
    summary: NodeSummary,
    *,
    now_unix_seconds: float,
    staleness_seconds: float,
    policy: Policy = Policy.BINPACK,
) -> Fit | Reason:
    """`fit`, from a node's summary."""
    report = summary.report
    if (
        report is None
        or not report.healthy
        or not is_fresh(
            report, now_unix_seconds=now_unix_seconds, staleness_seconds=staleness_seconds
        )
    ):
        stale = freshness_reason(
            report, now_unix_seconds=now_unix_seconds, staleness_seconds=staleness_seconds
        )
        if stale is not None:
            return stale
    if demand.shared:
        pool, frees = summary.shared_candidates, summary.shared_free
    else:
        pool, frees = summary.exclusive_candidates, summary.exclusive_free
    fitting = pool[bisect_left(frees, demand.memory_bytes) :]
    wanted = needed_gpus(demand, summary)
    if len(fitting) >= wanted:
        # binpack: the tightest GPUs that still fit; spread: the roomiest.
        chosen = (
            fitting if policy is Policy.BINPACK else sorted(fitting, key=lambda c: (-c[0], c[1]))
        )
        return Fit(tuple(c[2] for c in chosen[:wanted]))
    return _reason(demand, summary, room=len(fitting))


def needed_gpus(demand: GpuDemand, summary: NodeSummary) -> int:
    """How many GPUs the pod takes on this node: its count, or every GPU (DRA `All`)."""
    if demand.all_gpus:
        return max(demand.gpu_count, len(summary.totals_sorted), 1)
    return demand.gpu_count


def best_offer(demand: GpuDemand, summary: NodeSummary) -> Candidate | None:
    """The GPU a reason names as the best the node has for this demand: the roomiest usable GPU
    for a shared pod; for a pod that takes whole GPUs, the roomiest empty one (a GPU holding
    shared pods is no use to it, however much memory it has left). Lowest index on ties."""
    if demand.shared:
        return summary.best_usable
    return max(summary.exclusive_candidates, key=lambda c: (c[0], -c[1]), default=None)


def _reason(demand: GpuDemand, summary: NodeSummary, *, room: int) -> Reason:
    need = f"needs {demand.describe()}"
    totals = summary.totals_sorted
    if len(totals) - bisect_left(totals, demand.memory_bytes) < needed_gpus(demand, summary):
        return Reason(
            f"{need}; the node has {len(totals)} GPUs, the largest "
            f"{format_bytes(totals[-1] if totals else 0)}",
            resolvable=False,
            kind=ReasonKind.TOO_SMALL,
        )
    best = best_offer(demand, summary)
    parts = [need]
    if needed_gpus(demand, summary) > 1 and room:
        parts.append(f"only {room} GPUs have room")
    if best is None and summary.best_usable is not None:  # whole GPUs wanted, none empty
        parts.append(f"all {summary.usable} usable GPUs hold shared pods")
    elif best is None:
        counts = [
            f"{n} {what}"
            for n, what in ((summary.held, "held by pods"), (summary.unhealthy, "unhealthy"))
            if n
        ]
        parts.append(f"every GPU is taken ({', '.join(counts)})")
    else:
        parts.append(f"best free {format_bytes(best[0])} on GPU {best[1]} ({best[2]})")
    return Reason("; ".join(parts), best_free_bytes=best[0] if best else 0)


def fullness(snapshot: NodeSnapshot) -> float:
    """Committed fraction of the node's healthy GPU memory (claims included), 0.0 .. 1.0."""
    return summarize(snapshot).fullness


def score(snapshot: NodeSnapshot, *, policy: Policy) -> int:
    """0..10 for a node that fits: binpack favours the fullest node, spread the emptiest."""
    return score_summary(summarize(snapshot), policy=policy)


def score_summary(summary: NodeSummary, *, policy: Policy) -> int:
    packed = summary.binpack_score
    return packed if policy is Policy.BINPACK else MAX_SCORE - packed


@dataclass(frozen=True)
class Placement:
    node_name: str
    gpu_uuids: tuple[str, ...]


def place(
    demand: GpuDemand,
    snapshots: Iterable[NodeSnapshot],
    *,
    now_unix_seconds: float,
    staleness_seconds: float,
    policy: Policy = Policy.BINPACK,
) -> Placement | None:
    """The node and GPUs the scheduler with this extender would pick, or None if none fits.

    Ties between equal scores go to the node name that sorts first, so placement is repeatable.
    """
    best: tuple[int, str, Fit] | None = None
    for snapshot in snapshots:
        verdict = fit(
            demand,
            snapshot,
            now_unix_seconds=now_unix_seconds,
            staleness_seconds=staleness_seconds,
            policy=policy,
        )
        if not isinstance(verdict, Fit):
            continue
        key = (-score(snapshot, policy=policy), snapshot.name, verdict)
        if best is None or key[:2] < best[:2]:
            best = key
    return None if best is None else Placement(best[1], best[2].gpu_uuids)


def with_claim(snapshot: NodeSnapshot, claim: PodClaim) -> NodeSnapshot:
    """The snapshot after binding one more pod to the node."""
    return replace(snapshot, claims=(*snapshot.claims, claim))


def place_replicas(
    demand: GpuDemand,
    count: int,
    snapshots: Sequence[NodeSnapshot],
    *,
    now_unix_seconds: float,
    staleness_seconds: float,
    policy: Policy = Policy.BINPACK,
    uid_prefix: str = "replica",
) -> tuple[list[Placement], list[NodeSnapshot]]:
    """Place up to `count` copies of one pod one after another, each seeing the ones before.

    Returns the placements made (fewer than `count` when the cluster fills) and the snapshots
    with their claims, for the scaler's "how many more replicas fit".
    """
    by_name = {s.name: s for s in snapshots}
    placements: list[Placement] = []
    for i in range(count):
        placement = place(
            demand,
            by_name.values(),
            now_unix_seconds=now_unix_seconds,
            staleness_seconds=staleness_seconds,
            policy=policy,
        )
        if placement is None:
            break
        placements.append(placement)
        claim = PodClaim(f"{uid_prefix}-{i}", demand, placement.gpu_uuids)
        by_name[placement.node_name] = with_claim(by_name[placement.node_name], claim)
    return placements, list(by_name.values())
