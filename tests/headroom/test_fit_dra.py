"""DRA in the accounting: a claim for every GPU of a node (`All`), the check that GPUs the DRA
allocator already chose can hold the pod, and claims that name some of their GPUs."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from headroom.chosen import check_gpus
from headroom.demand import GpuDemand
from headroom.fit import Fit, NodeSnapshot, PodClaim, Reason, ReasonKind, fit, ledger
from headroom.report import GpuPod, GpuState, NodeReport, with_taints
from tests.headroom.builders import GI, NOW, gpu, node

STALE = 90.0
EVERY = GpuDemand(gpu_count=0, dra=True, all_gpus=True)


def check(demand: GpuDemand, snapshot: NodeSnapshot) -> Fit | Reason:
    return fit(demand, snapshot, now_unix_seconds=NOW, staleness_seconds=STALE)


def pinned(demand: GpuDemand, snapshot: NodeSnapshot, *uuids: str) -> Reason | None:
    return check_gpus(demand, snapshot, uuids, now_unix_seconds=NOW, staleness_seconds=STALE)


# -- allocationMode All --------------------------------------------------------------------------
def test_all_devices_takes_every_gpu_of_the_node() -> None:
    assert check(EVERY, node("n", gpu(0), gpu(1), gpu(2))) == Fit(("GPU-0", "GPU-1", "GPU-2"))


def test_all_devices_does_not_fit_when_one_gpu_is_taken() -> None:
    snapshot = node("n", gpu(0), gpu(1, used_gi=5, pods=(GpuPod("other", 5 * GI),)))
    verdict = check(EVERY, snapshot)
    assert isinstance(verdict, Reason)
    assert verdict.message.startswith("needs every GPU of the node; only 1 GPUs have room")
    assert verdict.resolvable


def test_all_devices_with_a_need_larger_than_a_gpu_never_fits() -> None:
    demand = GpuDemand(gpu_count=0, memory_bytes=60 * GI, dra=True, all_gpus=True)
    verdict = check(demand, node("n", gpu(0), gpu(1, total_gi=40)))
    assert verdict == Reason(
        "needs 60Gi on every GPU of the node; the node has 2 GPUs, the largest 80Gi",
        resolvable=False,
        kind=ReasonKind.TOO_SMALL,
    )


def test_all_devices_on_a_node_without_gpus_does_not_fit() -> None:
    verdict = check(EVERY, node("n"))
    assert isinstance(verdict, Reason) and not verdict.resolvable


# -- check_gpus: can the GPUs the allocator chose hold the pod ----------------------------------
def test_a_healthy_free_gpu_holds_the_pod() -> None:
    snapshot = node("n", gpu(0), gpu(1, used_gi=70, pods=(GpuPod("x", 70 * GI),)))
    assert pinned(GpuDemand(1, 20 * GI, dra=True), snapshot, "GPU-0") is None


def test_an_unhealthy_gpu_is_named_with_its_reason() -> None:
    snapshot = node("n", gpu(0, healthy=False, reason="XID 79"))
    reason = pinned(GpuDemand(1, dra=True), snapshot, "GPU-0")
    assert reason == Reason("GPU 0 (GPU-0) is unhealthy: XID 79")


def test_a_device_taint_makes_the_gpu_unhealthy_for_the_check() -> None:
    snapshot = node("n", gpu(0), gpu(1))
    assert snapshot.report is not None
    tainted = NodeSnapshot("n", with_taints(snapshot.report, {"GPU-1": "drain=:NoSchedule"}))
    assert pinned(GpuDemand(1, dra=True), tainted, "GPU-0") is None
    reason = pinned(GpuDemand(1, dra=True), tainted, "GPU-1")
    assert reason == Reason("GPU 1 (GPU-1) is unhealthy: device taint drain=:NoSchedule")


def test_a_gpu_held_by_another_exclusive_pod_is_refused() -> None:
    seen = node("n", gpu(0, used_gi=1, pods=(GpuPod("other", GI),)))
    starting = node("n", gpu(0), claims=(PodClaim("other", GpuDemand(1, dra=True), ("GPU-0",)),))
    for snapshot in (seen, starting):
        reason = pinned(GpuDemand(1, 10 * GI, shared=True, dra=True), snapshot, "GPU-0")
        assert reason == Reason("GPU 0 (GPU-0) is held by another pod")


def test_a_gpu_with_shared_pods_is_refused_to_an_exclusive_pod_only() -> None:
    sharer = PodClaim("s", GpuDemand(1, 10 * GI, shared=True, dra=True), ("GPU-0",))
    snapshot = node("n", gpu(0), claims=(sharer,))
    assert pinned(GpuDemand(1, dra=True), snapshot, "GPU-0") == Reason(
        "GPU 0 (GPU-0) is held by another pod"
    )
    assert pinned(GpuDemand(1, 20 * GI, shared=True, dra=True), snapshot, "GPU-0") is None


def test_too_little_free_memory_names_the_need_and_what_is_free() -> None:
    sharer = PodClaim("s", GpuDemand(1, 50 * GI, shared=True, dra=True), ("GPU-0",))
    snapshot = node("n", gpu(0, used_gi=5, unattributed_gi=5), claims=(sharer,))
    reason = pinned(GpuDemand(1, 30 * GI, shared=True, dra=True), snapshot, "GPU-0")
    assert reason == Reason("needs 30Gi; GPU 0 (GPU-0) has 25Gi free", best_free_bytes=25 * GI)


def test_every_chosen_gpu_must_hold_the_pod() -> None:
    snapshot = node("n", gpu(0), gpu(1, used_gi=75))
    reason = pinned(GpuDemand(2, 10 * GI, dra=True), snapshot, "GPU-0", "GPU-1")
    assert reason is not None
    assert reason.message == "needs 10Gi; GPU 1 (GPU-1) has 5Gi free"


def test_a_gpu_missing_from_the_report_is_named() -> None:
    reason = pinned(GpuDemand(1, dra=True), node("n", gpu(0)), "GPU-9")
    assert reason == Reason("GPU GPU-9 is not in the node's GPU report")


def test_a_stale_missing_or_unreadable_report_is_the_reason() -> None:
    stale = pinned(GpuDemand(1, dra=True), node("n", gpu(0), age_seconds=95), "GPU-0")
    assert stale == Reason("GPU report 95s old (stale after 90s)", kind=ReasonKind.STALE)
    missing = pinned(GpuDemand(1, dra=True), NodeSnapshot("n", None), "GPU-0")
    assert missing == Reason("no GPU report", kind=ReasonKind.NO_REPORT)
    broken = pinned(GpuDemand(1, dra=True), node("n", gpu(0), healthy=False), "GPU-0")
    assert broken is not None and broken.kind is ReasonKind.UNREADABLE


# -- claims with some GPUs named -----------------------------------------------------------------
def test_a_claim_with_named_gpus_holds_the_unnamed_rest_whole() -> None:
    # One GPU from the claim (GPU-0) and one from the device plugin, which no one named.
    mixed = PodClaim("m", GpuDemand(2, dra=True), ("GPU-0",))
    books, whole = ledger(node("n", gpu(0), gpu(1), gpu(2), claims=(mixed,)))
    assert whole == 1
    assert [b.held_whole for b in books] == [True, False, False]
    verdict = check(GpuDemand(2), node("n", gpu(0), gpu(1), gpu(2), claims=(mixed,)))
    assert isinstance(verdict, Reason)  # GPU-0 named, one more held: one GPU left, two asked


def test_an_unnamed_gpu_seen_in_the_report_is_not_held_twice() -> None:
    seen = GpuPod("m", 2 * GI)
    mixed = PodClaim("m", GpuDemand(2, dra=True), ("GPU-0",))
    _, whole = ledger(node("n", gpu(0), gpu(1, used_gi=2, pods=(seen,)), gpu(2), claims=(mixed,)))
    assert whole == 0


REPORTS = st.lists(
    st.tuples(
        st.integers(10, 80),
        st.integers(0, 10),
        st.booleans(),
        st.lists(st.sampled_from(["p1", "p2"]), max_size=2, unique=True),
    ),
    min_size=1,
    max_size=4,
)


@given(
    REPORTS,
    st.lists(st.integers(0, 3), max_size=3, unique=True),
    st.integers(0, 4),
    st.integers(0, 40),
    st.booleans(),
)
def test_a_claim_on_named_gpus_never_frees_memory_or_gpus(
    gpus: list[tuple[int, int, bool, list[str]]],
    named: list[int],
    count: int,
    memory_gi: int,
    shared: bool,
) -> None:
    report = NodeReport(
        node_name="n",
        reported_at_unix_seconds=NOW,
        gpus=tuple(
            GpuState(
                i,
                f"GPU-{i}",
                "m",
                total * GI,
                used * GI,
                healthy=healthy,
                pods=tuple(GpuPod(uid, GI) for uid in pods),
            )
            for i, (total, used, healthy, pods) in enumerate(gpus)
        ),
    )
    before_books, before_whole = ledger(NodeSnapshot("n", report))
    claim = PodClaim(
        "dra-pod",  # not in the report: a pod starting
        GpuDemand(max(count, len(named)), memory_gi * GI, shared=shared, dra=True),
        tuple(f"GPU-{i}" for i in named),
    )
    after_books, after_whole = ledger(NodeSnapshot("n", report, (claim,)))
    assert after_whole >= before_whole
    for before, after in zip(before_books, after_books, strict=True):
        assert after.free_bytes <= before.free_bytes
        assert after.usable <= before.usable
        if before.gpu.uuid not in claim.gpu_uuids:
            assert after == before  # a claim touches only the GPUs it names
