"""The accounting of DESIGN.md, case by case, then as properties over random clusters."""

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from headroom.demand import GpuDemand
from headroom.fit import (
    Fit,
    NodeSnapshot,
    Placement,
    PodClaim,
    Policy,
    Reason,
    ReasonKind,
    fit,
    fullness,
    ledger,
    place,
    place_replicas,
    score,
    with_claim,
)
from headroom.report import GpuPod, GpuState
from tests.headroom.builders import GI, NOW, gpu, node

STALE = 90.0


def check(
    demand: GpuDemand, snapshot: NodeSnapshot, policy: Policy = Policy.BINPACK
) -> Fit | Reason:
    return fit(demand, snapshot, now_unix_seconds=NOW, staleness_seconds=STALE, policy=policy)


def need(gib: float, count: int = 1, *, shared: bool = False) -> GpuDemand:
    return GpuDemand(gpu_count=count, memory_bytes=int(gib * GI), shared=shared)


# -- exclusive mode ------------------------------------------------------------------------------
def test_exclusive_needs_a_healthy_gpu_with_no_pod_and_enough_free_memory() -> None:
    snapshot = node(
        "n",
        gpu(0, pods=(GpuPod("other", 1 * GI),), used_gi=1),
        gpu(1, healthy=False),
        gpu(2, used_gi=70),
        gpu(3),
    )
    assert check(need(20), snapshot) == Fit(("GPU-3",))


def test_exclusive_reason_names_the_best_gpu() -> None:
    snapshot = node("n", gpu(0, used_gi=70), gpu(3, used_gi=67.5))
    verdict = check(need(20), snapshot)
    assert verdict == Reason(
        "needs 20Gi on 1 GPU; best free 12.5Gi on GPU 3 (GPU-3)", best_free_bytes=int(12.5 * GI)
    )


def test_whole_gpu_without_memory_need_and_all_taken() -> None:
    snapshot = node("n", gpu(0, pods=(GpuPod("a", GI),)), gpu(1, pods=(GpuPod("b", GI),)))
    verdict = check(GpuDemand(gpu_count=1), snapshot)
    assert isinstance(verdict, Reason)
    assert verdict.message == "needs 1 free GPU; every GPU is taken (2 held by pods)"
    assert verdict.resolvable


def test_several_gpus_must_all_fit() -> None:
    snapshot = node("n", gpu(0), gpu(1, used_gi=75), gpu(2))
    assert check(need(20, 2), snapshot) == Fit(("GPU-0", "GPU-2"))
    verdict = check(need(20, 3), snapshot)
    assert isinstance(verdict, Reason)
    assert verdict.message.startswith("needs 20Gi on 3 GPUs; only 2 GPUs have room")


def test_gpus_too_small_are_unresolvable() -> None:
    snapshot = node("n", gpu(0, total_gi=24), gpu(1, total_gi=24))
    verdict = check(need(40), snapshot)
    assert verdict == Reason(
        "needs 40Gi on 1 GPU; the node has 2 GPUs, the largest 24Gi",
        resolvable=False,
        kind=ReasonKind.TOO_SMALL,
    )
    assert isinstance(check(need(20, 3), snapshot), Reason)
    assert not check(need(20, 3), snapshot).resolvable  # type: ignore[union-attr]


def test_pending_whole_gpu_claims_take_the_best_gpus() -> None:
    # A pod bound to the node but not in the report yet holds one GPU; assume the roomiest.
    snapshot = node("n", gpu(0), gpu(1, used_gi=50), claims=(PodClaim("p", GpuDemand(1)),))
    verdict = check(need(20), snapshot)
    assert verdict == Fit(("GPU-1",))
    assert isinstance(check(need(40), snapshot), Reason)


def test_a_claim_ends_when_the_report_shows_the_pod() -> None:
    claim = PodClaim("p", need(20))
    seen = node("n", gpu(0, used_gi=20, pods=(GpuPod("p", 20 * GI),)), gpu(1), claims=(claim,))
    assert check(need(20), seen) == Fit(("GPU-1",))  # GPU-0 held by p, GPU-1 not claimed twice
    assert ledger(seen)[1] == 0


# -- shared mode ---------------------------------------------------------------------------------
def test_shared_commits_max_of_declared_and_used_plus_unattributed() -> None:
    pods = (GpuPod("small-user", 2 * GI), GpuPod("big-user", 30 * GI))
    claims = (
        PodClaim("small-user", need(10, shared=True), ("GPU-0",)),
        PodClaim("big-user", need(20, shared=True), ("GPU-0",)),
    )
    snapshot = node("n", gpu(0, used_gi=37, pods=pods, unattributed_gi=5), claims=claims)
    books, _ = ledger(snapshot)
    assert books[0].committed_bytes == (10 + 30 + 5) * GI
    assert check(need(35, shared=True), snapshot) == Fit(("GPU-0",))
    verdict = check(need(36, shared=True), snapshot)
    assert isinstance(verdict, Reason)
    assert "best free 35Gi on GPU 0" in verdict.message


def test_shared_claims_not_yet_in_the_report_add_their_declared_memory() -> None:
    claims = (PodClaim("new", need(50, shared=True), ("GPU-0",)),)
    snapshot = node("n", gpu(0), claims=claims)
    assert check(need(30, shared=True), snapshot) == Fit(("GPU-0",))
    assert isinstance(check(need(31, shared=True), snapshot), Reason)
    verdict = check(need(1), snapshot)  # exclusive pods need an empty GPU
    # The 30Gi left on GPU 0 is no use to a pod that takes a whole GPU: nothing is offered.
    assert verdict == Reason(
        "needs 1Gi on 1 GPU; all 1 usable GPUs hold shared pods", best_free_bytes=0
    )


def test_a_pod_headroom_does_not_know_holds_its_gpu_whole() -> None:
    snapshot = node("n", gpu(0, used_gi=1, pods=(GpuPod("stranger", GI),)))
    assert isinstance(check(need(1, shared=True), snapshot), Reason)


def test_shared_binpack_picks_the_tightest_gpu_and_spread_the_roomiest() -> None:
    snapshot = node(
        "n", gpu(0, used_gi=10, unattributed_gi=10), gpu(1, used_gi=50, unattributed_gi=50)
    )
    assert check(need(10, shared=True), snapshot, Policy.BINPACK) == Fit(("GPU-1",))
    assert check(need(10, shared=True), snapshot, Policy.SPREAD) == Fit(("GPU-0",))


# -- freshness -----------------------------------------------------------------------------------
def test_no_report_and_unreadable_gpus() -> None:
    assert check(need(1), NodeSnapshot("n", None)) == Reason(
        "no GPU report", kind=ReasonKind.NO_REPORT
    )
    verdict = check(need(1), node("n", gpu(0), healthy=False))
    assert verdict == Reason(
        "GPUs unreadable on the node: NVML: driver not loaded", kind=ReasonKind.UNREADABLE
    )


def test_stale_report_reason_says_how_old() -> None:
    verdict = check(need(1), node("n", gpu(0), age_seconds=95))
    assert verdict == Reason("GPU report 95s old (stale after 90s)", kind=ReasonKind.STALE)


# -- score and place -----------------------------------------------------------------------------
def test_binpack_scores_the_fuller_node_higher_and_spread_the_emptier() -> None:
    full = node("full", gpu(0, used_gi=60), gpu(1, used_gi=60))
    empty = node("empty", gpu(0), gpu(1))
    assert score(full, policy=Policy.BINPACK) > score(empty, policy=Policy.BINPACK)
    assert score(full, policy=Policy.SPREAD) < score(empty, policy=Policy.SPREAD)
    assert score(empty, policy=Policy.BINPACK) == 0
    assert score(empty, policy=Policy.SPREAD) == 10


def test_place_prefers_by_policy_and_skips_nodes_that_do_not_fit() -> None:
    nodes = [node("a", gpu(0, used_gi=70)), node("b", gpu(0, used_gi=40)), node("c", gpu(0))]

    def placed(demand: GpuDemand, policy: Policy) -> Placement | None:
        return place(demand, nodes, now_unix_seconds=NOW, staleness_seconds=STALE, policy=policy)

    assert placed(need(20, shared=True), Policy.BINPACK) == Placement("b", ("GPU-0",))
    assert placed(need(20, shared=True), Policy.SPREAD) == Placement("c", ("GPU-0",))
    assert placed(need(90), Policy.BINPACK) is None


def test_place_replicas_fills_the_cluster_and_stops() -> None:
    nodes = [node("a", gpu(0), gpu(1)), node("b", gpu(0, total_gi=24))]
    placements, after = place_replicas(
        need(20), 5, nodes, now_unix_seconds=NOW, staleness_seconds=STALE
    )
    assert len(placements) == 3
    assert sorted(p.node_name for p in placements) == ["a", "a", "b"]
    assert all(isinstance(check(need(20), s), Reason) for s in after)


# -- properties ------------------------------------------------------------------------------------
@st.composite
def clusters(draw: st.DrawFn) -> list[NodeSnapshot]:
    snapshots = []
    for n in range(draw(st.integers(1, 4))):
        gpus = []
        for i in range(draw(st.integers(1, 4))):
            total = draw(st.sampled_from([16, 24, 40, 80])) * GI
            used = draw(st.integers(0, total))
            pods: tuple[GpuPod, ...] = ()
            if used and draw(st.booleans()):
                pods = (GpuPod(f"n{n}-g{i}", used),)
            gpus.append(
                GpuState(
                    index=i,
                    uuid=f"GPU-{n}-{i}",
                    model="m",
                    total_bytes=total,
                    used_bytes=used,
                    healthy=draw(st.booleans()) or i > 0,
                    pods=pods,
                    unattributed_bytes=0 if pods else used,
                )
            )
        claims = tuple(
            PodClaim(p.uid, GpuDemand(1, p.used_bytes, shared=True), (g.uuid,))
            for g in gpus
            for p in g.pods
            if draw(st.booleans())
        )
        snapshots.append(node(f"node-{n}", *gpus, claims=claims))
    return snapshots


demands = st.builds(
    GpuDemand,
    gpu_count=st.integers(1, 2),
    memory_bytes=st.integers(1, 80).map(lambda g: g * GI),
    shared=st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(clusters(), st.lists(demands, max_size=12), st.sampled_from(list(Policy)))
def test_placing_any_sequence_never_commits_more_than_a_gpu_holds(
    snapshots: list[NodeSnapshot], sequence: list[GpuDemand], policy: Policy
) -> None:
    by_name = {s.name: s for s in snapshots}
    placed_on: dict[str, list[GpuDemand]] = {}
    for i, demand in enumerate(sequence):
        placement = place(
            demand, by_name.values(), now_unix_seconds=NOW, staleness_seconds=STALE, policy=policy
        )
        if placement is None:
            continue
        assert len(placement.gpu_uuids) == demand.gpu_count == len(set(placement.gpu_uuids))
        by_name[placement.node_name] = with_claim(
            by_name[placement.node_name], PodClaim(f"new-{i}", demand, placement.gpu_uuids)
        )
        for uuid in placement.gpu_uuids:
            placed_on.setdefault(uuid, []).append(demand)
    for snapshot in by_name.values():
        for book in ledger(snapshot)[0]:
            placed = placed_on.get(book.gpu.uuid, [])
            if not placed:
                continue
            assert book.gpu.healthy
            assert book.committed_bytes <= book.gpu.total_bytes
            if any(not d.shared for d in placed):  # a whole GPU: it was empty, and stays alone
                assert len(placed) == 1
                assert not book.gpu.pods


@settings(max_examples=200, deadline=None)
@given(clusters(), demands)
def test_binpack_prefers_the_fullest_fitting_node_and_spread_the_emptiest(
    snapshots: list[NodeSnapshot], demand: GpuDemand
) -> None:
    fitting = [s for s in snapshots if isinstance(check(demand, s), Fit)]
    for policy, pick in ((Policy.BINPACK, max), (Policy.SPREAD, min)):
        chosen = place(
            demand, snapshots, now_unix_seconds=NOW, staleness_seconds=STALE, policy=policy
        )
        if not fitting:
            assert chosen is None
            continue
        assert chosen is not None
        best = pick(round(10 * fullness(s)) for s in fitting)
        chosen_snapshot = next(s for s in fitting if s.name == chosen.node_name)
        assert round(10 * fullness(chosen_snapshot)) == best
    for a in fitting:
        for b in fitting:
            if fullness(a) > fullness(b):
                assert score(a, policy=Policy.BINPACK) >= score(b, policy=Policy.BINPACK)
                assert score(a, policy=Policy.SPREAD) <= score(b, policy=Policy.SPREAD)


@given(clusters(), demands, st.floats(min_value=STALE + 0.5, max_value=10**6))
def test_a_stale_node_never_fits_and_says_how_old(
    snapshots: list[NodeSnapshot], demand: GpuDemand, age_seconds: float
) -> None:
    for snapshot in snapshots:
        assert snapshot.report is not None
        stale = node(
            snapshot.name, *snapshot.report.gpus, age_seconds=age_seconds, claims=snapshot.claims
        )
        verdict = check(demand, stale)
        assert isinstance(verdict, Reason)
        match = re.fullmatch(r"GPU report (\d+)s old \(stale after 90s\)", verdict.message)
        assert match is not None, verdict.message
        assert abs(int(match.group(1)) - age_seconds) <= 1
