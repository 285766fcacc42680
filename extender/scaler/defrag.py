"""Scale-down that defragments: which replicas the ReplicaSet should remove first.

Left to itself, a ReplicaSet scaling down removes, among Ready pods, those on the nodes running
the most of its replicas: it spreads, leaving a little free memory on many nodes, where a big
pod fits nowhere. Before lowering the count, the AIScaler ranks the target's pods with
`controller.kubernetes.io/pod-deletion-cost` (lower is removed first) so that the replicas
removed are those on the least committed nodes, and on each node those sharing a GPU with the
fewest other pods: removing them empties GPUs and nodes, the free memory a large pod or the next
replica of another workload needs (binpack, towards fewer fuller nodes).

Pure: the pods and the nodes' snapshots in, the costs to write out. Only pods whose cost changes
are patched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from headroom.fit import NodeSnapshot, summarize

DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
COST_STEP = 10  # room between ranks, so a person can slot a pod in by hand


def deletion_costs(
    pods: Sequence[Mapping[str, Any]], snapshots: Mapping[str, NodeSnapshot]
) -> dict[str, int]:
    """Pod name -> deletion cost: the first to remove gets the lowest. Pods not bound to a node
    are left out (the ReplicaSet removes those first anyway)."""
    fullness = {name: summarize(s).fullness for name, s in snapshots.items()}

    def order(pod: Mapping[str, Any]) -> tuple[float, int, str]:
        node = str((pod.get("spec") or {}).get("nodeName") or "")
        uid = str((pod.get("metadata") or {}).get("uid") or "")
        return (fullness.get(node, 0.0), _gpu_neighbours(uid, snapshots.get(node)), _name(pod))

    bound = [p for p in pods if (p.get("spec") or {}).get("nodeName")]
    return {_name(pod): rank * COST_STEP for rank, pod in enumerate(sorted(bound, key=order))}


def changed_costs(pods: Sequence[Mapping[str, Any]], costs: Mapping[str, int]) -> dict[str, int]:
    """The costs that differ from what the pods carry now: the only pods to patch."""
    changed = {}
    for pod in pods:
        name = _name(pod)
        annotations = (pod.get("metadata") or {}).get("annotations") or {}
        if name in costs and annotations.get(DELETION_COST) != str(costs[name]):
            changed[name] = costs[name]
    return changed


def _gpu_neighbours(uid: str, snapshot: NodeSnapshot | None) -> int:
    """How many other pods share a GPU with this pod, by the node's report and claims."""
    if snapshot is None:
        return 0
    mine: set[str] = set()
    if snapshot.report is not None:
        mine |= {g.uuid for g in snapshot.report.gpus if any(p.uid == uid for p in g.pods)}
    mine |= {u for c in snapshot.claims if c.uid == uid for u in c.gpu_uuids}
    others: set[str] = set()
    if snapshot.report is not None:
        others |= {p.uid for g in snapshot.report.gpus if g.uuid in mine for p in g.pods}
    others |= {c.uid for c in snapshot.claims if set(c.gpu_uuids) & mine}
    return len(others - {uid})


def _name(pod: Mapping[str, Any]) -> str:
    return str((pod.get("metadata") or {}).get("name") or "")
