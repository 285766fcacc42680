"""The pod -> claim ledger the extender's view and `headroom status` share."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from headroom.demand import DemandError, GpuDemand
from headroom.fit import PodClaim
from headroom.ledger import (
    allocation_claims,
    claim_of,
    claims_by_node,
    gpu_accounts,
    with_allocations,
)
from headroom.report import GpuPod
from tests.extender.builders import pod
from tests.headroom.builders import GI, gpu, node
from tests.headroom.dra_builders import claim, dra_pod, lookups


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


# -- DRA: a pod's own claims, and allocations held for pods not bound yet ------------------------
def test_a_bound_dra_pod_claims_the_gpus_allocated_to_its_claims() -> None:
    both = claim("both", count=2, devices=[("node-a", "gpu-0"), ("node-a", "gpu-1")])
    found = claim_of(dra_pod("p", "both", node_name="node-a"), dra=lookups([both]))
    assert found == PodClaim("p", GpuDemand(2, dra=True), ("GPU-a0", "GPU-a1"))
    assert claim_of(dra_pod("p", "both", node_name="node-a")) is None  # claims not known


def test_an_unreadable_claim_counts_as_one_whole_gpu_and_is_told() -> None:
    bad = claim("bad")
    bad["spec"]["devices"]["requests"][0]["exactly"]["count"] = -1
    told: list[str] = []
    found = claim_of(
        dra_pod("p", "bad", node_name="node-a"),
        dra=lookups([bad]),
        on_unreadable=lambda uid, exc: told.append(f"{uid} {exc.field}"),
    )
    assert found == PodClaim("p", GpuDemand(gpu_count=1))
    assert told == ["p ResourceClaim bad: spec.devices.requests[0].exactly.count"]


def test_allocations_held_for_pods_not_bound_yet() -> None:
    claims = [
        claim("bound", devices=[("node-a", "gpu-0")], reserved_for=["p-bound"]),
        claim("binding", devices=[("node-a", "gpu-1")], reserved_for=["p-new"]),
        claim("loose", memory=10 * GI, devices=[("node-b", "gpu-0")], uid="c-loose"),
        claim("nic", devices=[("node-b", "gpu-0")], driver="nic.example.com"),
        claim("waiting", reserved_for=["p-wait"]),  # not allocated
    ]
    held = allocation_claims(claims, bound_pods=lambda uid: uid == "p-bound", dra=lookups())
    assert held == {
        "node-a": [PodClaim("p-new", GpuDemand(1, dra=True), ("GPU-a1",))],
        "node-b": [
            PodClaim("claim:c-loose", GpuDemand(1, 10 * GI, shared=True, dra=True), ("GPU-b0",))
        ],
    }


def test_a_claim_over_two_nodes_counts_on_each_only_its_gpus_there() -> None:
    wide = claim("wide", count=2, devices=[("node-a", "gpu-0"), ("node-b", "gpu-0")])
    held = allocation_claims([wide], bound_pods=lambda uid: False, dra=lookups())
    assert held == {
        "node-a": [PodClaim("claim:uid-wide", GpuDemand(1, dra=True), ("GPU-a0",))],
        "node-b": [PodClaim("claim:uid-wide", GpuDemand(1, dra=True), ("GPU-b0",))],
    }


def test_an_unreadable_claim_holds_nothing_in_the_allocations() -> None:
    bad = claim("bad", devices=[("node-a", "gpu-0")])
    bad["status"]["allocation"]["devices"]["results"] = "x"
    assert allocation_claims([bad], bound_pods=lambda uid: False, dra=lookups()) == {}


def test_a_pods_own_claim_wins_over_an_allocation_with_its_uid() -> None:
    own = {"node-a": [PodClaim("p", GpuDemand(1, dra=True), ("GPU-a0",))]}
    allocations = {
        "node-a": [
            PodClaim("p", GpuDemand(1, dra=True), ("GPU-a0",)),
            PodClaim("q", GpuDemand(1, dra=True), ("GPU-a1",)),
            PodClaim("q", GpuDemand(1, dra=True), ("GPU-a2",)),  # a second claim of q: kept
        ],
        "node-b": [PodClaim("p", GpuDemand(1, dra=True), ("GPU-b0",))],
    }
    merged = with_allocations(own, allocations)
    assert {n: [(c.uid, c.gpu_uuids) for c in cs] for n, cs in merged.items()} == {
        "node-a": [("p", ("GPU-a0",)), ("q", ("GPU-a1",)), ("q", ("GPU-a2",))]
    }
    assert own == {"node-a": [PodClaim("p", GpuDemand(1, dra=True), ("GPU-a0",))]}  # untouched


DEVICE_KEYS = [("node-a", "gpu-0"), ("node-a", "gpu-1"), ("node-b", "gpu-0")]


@given(
    st.lists(st.integers(0, 3), min_size=len(DEVICE_KEYS), max_size=len(DEVICE_KEYS)),
    st.lists(st.lists(st.sampled_from(["p0", "p1", "p2"]), max_size=2, unique=True), max_size=4),
    st.sets(st.sampled_from(["p0", "p1", "p2"])),
)
def test_a_pod_is_counted_at_most_once_per_gpu(
    owners: list[int], reservations: list[list[str]], bound: set[str]
) -> None:
    """Whole GPUs (each allocated to one claim at most), claims reserved for any pods, some of
    them bound: merged, the ledger's input never names one (pod, GPU) twice."""
    claims = []
    for i, reserved in enumerate(reservations):
        devices = [key for key, owner in zip(DEVICE_KEYS, owners, strict=True) if owner == i]
        allocated = devices or None
        claims.append(claim(f"c{i}", devices=allocated, reserved_for=reserved))
    dra = lookups(claims)
    pods = [
        dra_pod(uid, *(c["metadata"]["name"] for c in claims if uid in _reserved(c)), node_name=n)
        for uid, n in (("p0", "node-a"), ("p1", "node-b"), ("p2", "node-a"))
        if uid in bound
    ]
    merged = with_allocations(
        claims_by_node(pods, dra=dra),
        allocation_claims(claims, bound_pods=lambda uid: uid in bound, dra=dra),
    )
    for node_claims in merged.values():
        held = [(c.uid, u) for c in node_claims for u in c.gpu_uuids]
        assert len(held) == len(set(held))
        # A bound pod is counted through its own claim alone.
        own = {c.uid for c in node_claims if c.uid in bound}
        assert all(sum(c.uid == uid for c in node_claims) == 1 for uid in own)


def _reserved(obj: dict[str, Any]) -> list[str]:
    return [e["uid"] for e in obj.get("status", {}).get("reservedFor", [])]


def test_a_gpu_held_whole_has_nothing_free_and_the_rest_reserved() -> None:
    starting = PodClaim("dra", GpuDemand(1, dra=True), ("GPU-0",))
    running = GpuPod(uid="plugin", used_bytes=10 * GI)  # an exclusive pod the report shows
    snapshot = node(
        "n", gpu(0), gpu(1, used_gi=10, pods=(running,)), gpu(2, used_gi=5), claims=(starting,)
    )
    accounts = [(a.used_bytes, a.reserved_bytes, a.free_bytes) for a in gpu_accounts(snapshot)]
    assert accounts == [(0, 80 * GI, 0), (10 * GI, 70 * GI, 0), (5 * GI, 0, 75 * GI)]
