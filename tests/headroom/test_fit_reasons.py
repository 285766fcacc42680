"""Reasons when pending claims hold the GPUs: what a reason offers must really be free."""

from headroom.demand import GpuDemand
from headroom.fit import PodClaim, Reason, fit
from headroom.report import GpuPod
from tests.headroom.builders import GI, NOW, gpu, node


def test_a_gpu_a_pending_pod_will_hold_is_not_offered_as_free() -> None:
    # Two empty GPUs, both taken by pods bound to the node but not in its report yet.
    claims = (PodClaim("a", GpuDemand(1, 20 * GI)), PodClaim("b", GpuDemand(1, 20 * GI)))
    snapshot = node("n", gpu(0), gpu(1), claims=claims)
    verdict = fit(GpuDemand(1, 20 * GI), snapshot, now_unix_seconds=NOW, staleness_seconds=90)
    assert isinstance(verdict, Reason)
    assert verdict.best_free_bytes == 0
    assert verdict.message == "needs 20Gi on 1 GPU; every GPU is taken (2 held by pods)"


def test_the_best_free_gpu_left_after_pending_claims_is_named() -> None:
    claims = (PodClaim("a", GpuDemand(1, 20 * GI)),)
    snapshot = node("n", gpu(0), gpu(1, used_gi=70), claims=claims)
    verdict = fit(GpuDemand(1, 20 * GI), snapshot, now_unix_seconds=NOW, staleness_seconds=90)
    assert isinstance(verdict, Reason)
    assert verdict.best_free_bytes == 10 * GI  # GPU 0 is the claim's; GPU 1 has 10Gi free
    assert "best free 10Gi on GPU 1" in verdict.message


def test_a_whole_gpu_pod_is_offered_the_roomiest_empty_gpu_not_a_shared_one() -> None:
    shared = PodClaim("s", GpuDemand(1, 10 * GI, shared=True), ("GPU-0",))
    snapshot = node(
        "n", gpu(0, used_gi=10, pods=(GpuPod("s", 10 * GI),)), gpu(1, used_gi=60), claims=(shared,)
    )
    verdict = fit(GpuDemand(1, 40 * GI), snapshot, now_unix_seconds=NOW, staleness_seconds=90)
    assert isinstance(verdict, Reason)
    # GPU 0 has 70Gi left but holds a shared pod; the empty GPU 1 has 20Gi.
    assert verdict.message == "needs 40Gi on 1 GPU; best free 20Gi on GPU 1 (GPU-1)"
    assert verdict.best_free_bytes == 20 * GI
