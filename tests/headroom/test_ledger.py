"""The pod -> claim ledger the extender's view and `headroom status` share."""

from __future__ import annotations

from headroom.demand import DemandError, GpuDemand
from headroom.fit import PodClaim
from headroom.ledger import claim_of, claims_by_node, gpu_accounts
from headroom.report import GpuPod
from tests.extender.builders import pod
from tests.headroom.builders import GI, gpu, node


def test_a_bound_gpu_pod_is_a_claim_on_its_assigned_gpus() -> None:
    claim = claim_of(pod("a", node_name="n1", assigned="GPU-0,GPU-1"))
    assert claim == PodClaim("a", GpuDemand(1, 20 * GI, shared=True), ("GPU-0", "GPU-1"))


def test_finished_pods_and_pods_without_gpus_claim_nothing() -> None:
    assert claim_of(pod("a", node_name="n1", phase="Succeeded")) is None
    assert claim_of(pod("b", node_name="n1", phase="Failed")) is None
    assert claim_of(pod("c", memory=None, shared=False, node_name="n1")) is None


def test_an_unreadable_request_counts_as_one_whole_gpu_and_is_told() -> None:
    told: list[tuple[str, str]] = []

    def tell(uid: str, exc: DemandError) -> None:
        told.append((uid, exc.field))

    claim = claim_of(pod("a", memory="lots", node_name="n1"), on_unreadable=tell)
    assert claim == PodClaim("a", GpuDemand(gpu_count=1))
    assert told == [("a", "headroom.dev/gpu-memory")]


def test_claims_are_grouped_by_the_node_the_pod_is_bound_to() -> None:
    pods = [
        pod("a", node_name="n1"),
        pod("b"),
        pod("c", node_name="n2"),
        pod("d", node_name="n1", phase="Succeeded"),
        pod("e", node_name="n1"),
    ]
    claims = claims_by_node(pods)
    assert {n: [c.uid for c in cs] for n, cs in claims.items()} == {"n1": ["a", "e"], "n2": ["c"]}


def test_accounts_split_used_reserved_and_free() -> None:
    seen = GpuPod(uid="seen", used_bytes=10 * GI)
    snapshot = node(
        "n",
        gpu(0, used_gi=10, pods=(seen,)),
        gpu(1),
        claims=(
            PodClaim("seen", GpuDemand(1, 15 * GI, shared=True), ("GPU-0",)),
            PodClaim("new", GpuDemand(1, 20 * GI, shared=True), ("GPU-1",)),
        ),
    )
    accounts = {
        a.gpu.index: (a.used_bytes, a.reserved_bytes, a.free_bytes) for a in gpu_accounts(snapshot)
    }
    # GPU 0: the pod uses 10Gi of the 15Gi it declared, so 5Gi more stays reserved for it.
    assert accounts == {0: (10 * GI, 5 * GI, 65 * GI), 1: (0, 20 * GI, 60 * GI)}
