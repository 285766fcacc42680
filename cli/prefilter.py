"""What kube-scheduler's own filters decide before it asks Headroom: the nodes a pending GPU pod
never reaches the extender for, and why.

The extender is asked only about nodes the scheduler's plugins passed. `why` judges the filters a
GPU pod commonly meets, as the stock plugins do: a cordoned node (NodeUnschedulable), the pod's
`nodeSelector` and required node affinity (NodeAffinity, through the scaler's own judge of them)
and taints with NoSchedule or NoExecute the pod does not tolerate (TaintToleration). CPU, memory,
ports and volumes are not judged: the scheduler's own message on the pod names those.
Pure: no client imports.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from extender.scaler.eligibility import node_matches

CORDONED, AFFINITY, TAINT = "cordoned", "node selector/affinity", "taint"
UNSCHEDULABLE_TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
BLOCKING_EFFECTS = ("NoSchedule", "NoExecute")


def exclusion(pod: Mapping[str, Any], node: Mapping[str, Any]) -> tuple[str, str] | None:
    """(filter, words) when the scheduler keeps the pod off the node before Headroom is asked;
    None when the node reaches the extender."""
    spec = pod.get("spec") or {}
    tolerations = [t for t in spec.get("tolerations") or [] if isinstance(t, Mapping)]
    meta = node.get("metadata") or {}
    node_spec = node.get("spec") or {}
    if node_spec.get("unschedulable") and not _tolerated(tolerations, UNSCHEDULABLE_TAINT):
        return CORDONED, "the node is cordoned (spec.unschedulable)"
    labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    if not node_matches(spec, node_name=str(meta.get("name", "")), labels=labels):
        return AFFINITY, "the pod's nodeSelector or required node affinity does not match the node"
    for taint in node_spec.get("taints") or []:
        if not isinstance(taint, Mapping) or taint.get("effect") not in BLOCKING_EFFECTS:
            continue
        if not _tolerated(tolerations, taint):
            value = f"={taint['value']}" if taint.get("value") else ""
            return TAINT, f"the pod does not tolerate the taint {taint.get('key')}{value}:" + str(
                taint.get("effect")
            )
    return None


def _tolerated(tolerations: list[Mapping[str, Any]], taint: Mapping[str, Any]) -> bool:
    return any(_tolerates(t, taint) for t in tolerations)


def _tolerates(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    """Kubernetes' rule: an empty effect matches every effect; an empty key with Exists matches
    every taint; Exists ignores the value; Equal (the default) compares it."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    operator = toleration.get("operator") or "Equal"
    key = toleration.get("key") or ""
    if not key:
        return operator == "Exists"
    if key != taint.get("key"):
        return False
    return operator == "Exists" or (toleration.get("value") or "") == (taint.get("value") or "")
