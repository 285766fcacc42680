"""Scale-down that defragments: the replicas on the least committed node, and on a node those
sharing a GPU with the fewest others, get the lowest deletion cost; only changes are written."""

from __future__ import annotations

from typing import Any

from extender.scaler.defrag import DELETION_COST, changed_costs, deletion_costs
from headroom.demand import GpuDemand
from headroom.fit import NodeSnapshot, PodClaim
from headroom.report import GpuState, NodeReport

GI = 2**30


def pod(name: str, node: str, cost: int | None = None) -> dict[str, Any]:
    annotations = {} if cost is None else {DELETION_COST: str(cost)}
    return {
        "metadata": {"name": name, "uid": name, "annotations": annotations},
        "spec": {"nodeName": node},
    }


def node(name: str, gpus: int, claims: dict[int, list[str]]) -> NodeSnapshot:
    """`claims`: GPU index -> the pods on it (each 40Gi shared of an 80Gi GPU)."""
    report = NodeReport(
        name,
        0.0,
        tuple(
            GpuState(index=i, uuid=f"{name}-{i}", model="m", total_bytes=80 * GI, used_bytes=0)
            for i in range(gpus)
        ),
    )
    held = tuple(
        PodClaim(uid, GpuDemand(1, 40 * GI, shared=True), (f"{name}-{gpu}",))
        for gpu, uids in claims.items()
        for uid in uids
    )
    return NodeSnapshot(name, report, held)


def test_the_lone_replica_on_the_emptiest_node_goes_first() -> None:
    """The stock ReplicaSet would remove one of the three on the crowded node `a` (it spreads);
    removing the one on `b` empties a node instead."""
    snapshots = {
        "a": node("a", 2, {0: ["a1", "a2"], 1: ["a3"]}),
        "b": node("b", 2, {0: ["b1"]}),
    }
    pods = [pod("a1", "a"), pod("a2", "a"), pod("a3", "a"), pod("b1", "b")]
    costs = deletion_costs(pods, snapshots)
    assert min(costs, key=costs.__getitem__) == "b1"
    # On `a`, the pod alone on its GPU goes before the two sharing one.
    assert costs["a3"] < costs["a1"] and costs["a3"] < costs["a2"]


def test_unbound_pods_get_no_cost_and_only_changed_costs_are_written() -> None:
    snapshots = {"a": node("a", 1, {0: ["a1"]})}
    pods = [pod("a1", "a", cost=0), pod("p", "")]
    costs = deletion_costs(pods, snapshots)
    assert costs == {"a1": 0}
    assert changed_costs(pods, costs) == {}
    assert changed_costs([pod("a1", "a", cost=50)], costs) == {"a1": 0}
