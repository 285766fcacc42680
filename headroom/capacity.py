"""How many copies of one pod the cluster holds now: `place_replicas`' count, from an index.

The scaler asks this for every AIScaler every round ("how many more replicas of this template
fit"). `place_replicas` answers by placing the copies one at a time, each a pass of `fit` and
`score` over every node: minutes for 200 AIScalers over 5,000 nodes. `CapacityIndex`, built once
per round, gives the same answers from a few node summaries, because of three facts:

- A copy changes only the node it lands on, and which GPUs of that node it takes depends only on
  that node, the demand and the policy. So the copies a cluster holds are the sum of what each node
  holds by itself, whatever order the scheduler fills nodes in, and when no copy fits anywhere
  more, every node is as full as if it had been filled alone.
- What a node holds follows from its summary: an exclusive copy takes `gpu_count` of the empty
  GPUs that have room; a shared copy takes `memory_bytes` off `gpu_count` GPUs (one GPU each:
  floor(free / need) copies per GPU; several: replayed with `fit`'s own choice of GPUs). Pending
  claims that hold whole GPUs keep holding the same ones (they take the roomiest empty GPUs, and a
  copy only ever goes on others).
- The report alone bounds the summary from above (claims commit memory and take GPUs, never free
  any): a node whose k-th largest free GPU in its report is below the need holds no copy. Nodes
  are visited by that bound, largest first, and summarised only when visited, so a question stops
  after the few nodes that hold the copies asked for.

When fewer copies fit than asked for, "the most free memory one GPU offers" afterwards comes from
`fit`'s own Reason: on the nodes that took copies by replaying `fit` + `with_claim` (fewer nodes
than copies asked for), elsewhere from the summaries, best bound first. `copies_by_placement` is
the reference; the tests check that the index gives its answers exactly. Pure: no client imports.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import overload

from headroom.demand import GpuDemand
from headroom.fit import (
    Candidate,
    Fit,
    NodeSnapshot,
    NodeSummary,
    PodClaim,
    Policy,
    best_offer,
    fit,
    fit_summary,
    place_replicas,
    summarize,
    with_claim,
)
from headroom.report import NodeReport

NO_ROOM = -1  # the k-th largest free (or total) of a node with fewer than k GPUs


@dataclass(frozen=True)
class Copies:
    """The answer: `count` copies fit (at most the number asked for)."""

    count: int
    blocked: bool = False  # fewer fit than asked for
    best_free_bytes: int = 0  # when blocked: the most free memory one GPU offers once full


class _Node:
    """A node with a readable report, and bounds read off the report alone. The accounting can
    only lower them (claims commit memory and take GPUs; it never frees any), so a node whose
    bound is below a need is skipped without being summarised."""

    __slots__ = (
        "best_bound",
        "exclusive_bound",
        "name",
        "reported_at_unix_seconds",
        "shared_bound",
        "snapshot",
        "totals_bound",
    )

    def __init__(self, snapshot: NodeSnapshot, report: NodeReport) -> None:
        self.snapshot, self.name = snapshot, snapshot.name
        self.reported_at_unix_seconds = report.reported_at_unix_seconds
        healthy = [g for g in report.gpus if g.healthy]
        self.shared_bound = sorted(g.free_bytes for g in healthy)  # usable GPUs are healthy
        self.exclusive_bound = sorted(g.free_bytes for g in healthy if not g.pods)  # and empty
        self.best_bound = self.shared_bound[-1] if self.shared_bound else 0
        self.totals_bound = sorted(g.total_bytes for g in report.gpus)


def _kth(values: Sequence[int], k: int) -> int:
    return values[-k] if len(values) >= k else NO_ROOM


class CapacityIndex(Sequence[NodeSnapshot]):
    """The snapshots of one round, indexed for `copies`. A Sequence of the snapshots given, so it
    goes wherever snapshots do; build it once per round and ask it for every demand.

    Nodes are summarised when a question first needs them (most never are), and
    `previous` (the index of the round before) lends the summaries it made of snapshots that are
    still the same objects (ClusterView hands out the same snapshot while a node is unchanged).
    Not thread-safe; one controller thread asks it.
    """

    def __init__(
        self, snapshots: Iterable[NodeSnapshot], *, previous: CapacityIndex | None = None
    ) -> None:
        self._snapshots = tuple(snapshots)
        self._nodes: list[_Node] = []
        self._by_name: dict[str, _Node] = {}
        self.summaries: dict[str, NodeSummary] = {}  # by node name, made so far
        lent = previous.summaries if previous is not None else {}
        before = previous._by_name if previous is not None else {}
        # place_replicas keeps the last snapshot of a name; so does this.
        for snapshot in {s.name: s for s in self._snapshots}.values():
            report = snapshot.report
            if report is None or not report.healthy:
                continue  # never fits, and fit's Reason offers no free memory
            node = self._by_name[snapshot.name] = _Node(snapshot, report)
            self._nodes.append(node)
            earlier = before.get(snapshot.name)
            if earlier is not None and earlier.snapshot is snapshot and snapshot.name in lent:
                self.summaries[snapshot.name] = lent[snapshot.name]
        self._by_free: dict[tuple[bool, int], tuple[list[int], list[int]]] = {}
        self._by_best: list[int] | None = None

    @overload
    def __getitem__(self, index: int) -> NodeSnapshot: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[NodeSnapshot]: ...

    def __getitem__(self, index: int | slice) -> NodeSnapshot | Sequence[NodeSnapshot]:
        return self._snapshots[index]

    def __len__(self) -> int:
        return len(self._snapshots)

    def _summary(self, node: _Node) -> NodeSummary:
        found = self.summaries.get(node.name)
        if found is None:
            found = self.summaries[node.name] = summarize(node.snapshot)
        return found

    def copies(
        self,
        demand: GpuDemand,
        wanted: int,
        *,
        now_unix_seconds: float,
        staleness_seconds: float,
        policy: Policy = Policy.BINPACK,
    ) -> Copies:
        """What `copies_by_placement` answers for these snapshots, without placing one by one."""
        if wanted <= 0:
            return Copies(0)
        if demand.gpu_count < 1 or demand.memory_bytes < 0:  # no real pod asks this: the reference
            return copies_by_placement(
                demand,
                wanted,
                self._snapshots,
                now_unix_seconds=now_unix_seconds,
                staleness_seconds=staleness_seconds,
                policy=policy,
            )
        bounds, order = self._free_index(demand.shared, demand.gpu_count)
        filling: list[_Node] = []
        total = 0
        for position in order:
            if bounds[position] < demand.memory_bytes:
                break  # here and after, not one copy fits
            node = self._nodes[position]
            if now_unix_seconds - node.reported_at_unix_seconds > staleness_seconds:
                continue  # fit's staleness rule
            summary = self._summary(node)
            if not _fits_one(summary, demand):
                continue
            total += _copies_on(summary, demand, policy=policy, limit=wanted - total)
            if total >= wanted:
                return Copies(wanted)
            filling.append(node)
        best_free = self._best_free_elsewhere(
            demand, now_unix_seconds=now_unix_seconds, staleness_seconds=staleness_seconds
        )
        count = 0
        for node in filling:
            held, free = _fill(
                node.snapshot,
                self._summary(node),
                demand,
                now_unix_seconds=now_unix_seconds,
                staleness_seconds=staleness_seconds,
                policy=policy,
                limit=wanted,
            )
            count += held
            best_free = max(best_free, free)
        return Copies(count, blocked=True, best_free_bytes=best_free)

    def _free_index(self, shared: bool, gpu_count: int) -> tuple[list[int], list[int]]:
        """Per node, a bound on the k-th largest free GPU a copy could use (a node fits a copy
        exactly when that GPU has room: fit's bisection, inverted); and the nodes by it, largest
        first."""
        key = (shared, gpu_count)
        found = self._by_free.get(key)
        if found is None:
            bounds = [
                _kth(n.shared_bound if shared else n.exclusive_bound, gpu_count)
                for n in self._nodes
            ]
            order = sorted(range(len(bounds)), key=bounds.__getitem__, reverse=True)
            found = self._by_free[key] = (bounds, order)
        return found

    def _best_free_elsewhere(
        self, demand: GpuDemand, *, now_unix_seconds: float, staleness_seconds: float
    ) -> int:
        """The most free memory fit's Reason offers on the fresh nodes where no copy fits:
        their best usable GPU, or 0 when no k of their GPUs are big enough ("too small")."""
        if self._by_best is None:
            self._by_best = sorted(
                range(len(self._nodes)), key=lambda p: self._nodes[p].best_bound, reverse=True
            )
        need, count = demand.memory_bytes, demand.gpu_count
        best = 0
        for position in self._by_best:
            node = self._nodes[position]
            if node.best_bound <= best:
                break
            if (
                now_unix_seconds - node.reported_at_unix_seconds > staleness_seconds
                or _kth(node.totals_bound, count) < need
            ):
                continue  # stale, or too small for sure: fit offers 0
            summary = self._summary(node)
            if _fits_one(summary, demand) or _kth(summary.totals_sorted, count) < need:
                continue  # filled (counted by _fill), or too small
            offer = best_offer(demand, summary)
            best = max(best, offer[0] if offer else 0)
        return best


def _fits_one(summary: NodeSummary, demand: GpuDemand) -> bool:
    """fit_summary's test on a fresh node: `gpu_count` candidates with room."""
    frees = summary.shared_free if demand.shared else summary.exclusive_free
    return _kth(frees, demand.gpu_count) >= demand.memory_bytes


def _copies_on(summary: NodeSummary, demand: GpuDemand, *, policy: Policy, limit: int) -> int:
    """How many copies fit on a fresh node by itself, counting no further than `limit`."""
    need, count = demand.memory_bytes, demand.gpu_count
    if not demand.shared:  # each copy takes `count` empty GPUs with room, whole
        frees = summary.exclusive_free
        return min(limit, (len(frees) - bisect_left(frees, need)) // count)
    if need == 0:
        return limit  # a shared copy that needs no memory never uses a GPU up
    start = bisect_left(summary.shared_free, need)
    if count == 1:
        held = 0
        for free in summary.shared_free[start:]:
            held += free // need
            if held >= limit:
                return limit
        return held
    return _replay_shared(
        list(summary.shared_candidates[start:]), demand, policy=policy, limit=limit
    )


def _replay_shared(pool: list[Candidate], demand: GpuDemand, *, policy: Policy, limit: int) -> int:
    """Shared copies on several GPUs each, GPUs chosen as fit chooses (the summary's candidates
    re-sorted after each copy takes its memory off the GPUs it got)."""
    need, count = demand.memory_bytes, demand.gpu_count
    held = 0
    while held < limit:
        fitting = pool[bisect_left(pool, (need,)) :]
        if len(fitting) < count:
            break
        if policy is not Policy.BINPACK:
            fitting = sorted(fitting, key=lambda c: (-c[0], c[1]))
        chosen = set(fitting[:count])
        pool = sorted((c[0] - need, c[1], c[2]) if c in chosen else c for c in pool)
        held += 1
    return held


def _fill(
    snapshot: NodeSnapshot,
    summary: NodeSummary,
    demand: GpuDemand,
    *,
    now_unix_seconds: float,
    staleness_seconds: float,
    policy: Policy,
    limit: int,
) -> tuple[int, int]:
    """Copies placed on the node by itself until none fits (`fit` + `with_claim`, as
    place_replicas), and the best free memory fit's Reason then offers."""
    held = 0
    while held < limit:
        verdict = fit_summary(
            demand,
            summary,
            now_unix_seconds=now_unix_seconds,
            staleness_seconds=staleness_seconds,
            policy=policy,
        )
        if not isinstance(verdict, Fit):
            return held, verdict.best_free_bytes
        snapshot = with_claim(snapshot, PodClaim(f"capacity-{held}", demand, verdict.gpu_uuids))
        summary = summarize(snapshot)
        held += 1
    return held, 0


def copies_by_placement(
    demand: GpuDemand,
    wanted: int,
    snapshots: Sequence[NodeSnapshot],
    *,
    now_unix_seconds: float,
    staleness_seconds: float,
    policy: Policy = Policy.BINPACK,
) -> Copies:
    """The reference answer: `place_replicas` one copy at a time, then `fit`'s Reason on every
    node for the best free memory left. Slow over big clusters; the tests compare against it."""
    wanted = max(0, wanted)
    placements, after = place_replicas(
        demand,
        wanted,
        snapshots,
        now_unix_seconds=now_unix_seconds,
        staleness_seconds=staleness_seconds,
        policy=policy,
        uid_prefix="feasibility",
    )
    if len(placements) == wanted:
        return Copies(wanted)
    best_free = 0
    for snapshot in after:
        verdict = fit(
            demand,
            snapshot,
            now_unix_seconds=now_unix_seconds,
            staleness_seconds=staleness_seconds,
            policy=policy,
        )
        if not isinstance(verdict, Fit):
            best_free = max(best_free, verdict.best_free_bytes)
    return Copies(len(placements), blocked=True, best_free_bytes=best_free)
