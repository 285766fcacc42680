"""Which nodes a workload's replicas may land on: the pod template's `nodeSelector` and required
node affinity, judged as kube-scheduler's NodeAffinity plugin judges them.

Feasibility counts headroom only on these nodes: free GPUs in a pool the pods can never reach are
no capacity for them. Taints are not judged here: the webhook adds the GPU tolerations to the
pods at admission, so the Deployment's own template does not carry them. Pure: no client imports.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"


def placement_key(pod_spec: Mapping[str, Any]) -> str:
    """What of a pod spec decides its nodes, as a string: equal keys, equal node sets."""
    required = ((pod_spec.get("affinity") or {}).get("nodeAffinity") or {}).get(REQUIRED) or {}
    if not pod_spec.get("nodeSelector") and not required:
        return ""  # every node
    return json.dumps([pod_spec.get("nodeSelector") or {}, required], sort_keys=True)


def node_matches(pod_spec: Mapping[str, Any], *, node_name: str, labels: Mapping[str, str]) -> bool:
    """Whether a pod with this spec may be placed on the node, by its labels and name."""
    selector = pod_spec.get("nodeSelector") or {}
    if not isinstance(selector, Mapping) or any(labels.get(k) != v for k, v in selector.items()):
        return False
    required = ((pod_spec.get("affinity") or {}).get("nodeAffinity") or {}).get(REQUIRED) or {}
    terms = required.get("nodeSelectorTerms") if isinstance(required, Mapping) else None
    if not terms:
        return True
    # Terms are ORed; the expressions and fields within one term are ANDed.
    return any(isinstance(t, Mapping) and _term(t, node_name, labels) for t in terms)


def _term(term: Mapping[str, Any], node_name: str, labels: Mapping[str, str]) -> bool:
    expressions = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not expressions and not fields:
        return False  # an empty term matches no node
    by_field = {"metadata.name": node_name}
    return all(_expression(e, labels) for e in expressions) and all(
        _expression(f, by_field) for f in fields
    )


def _expression(expression: object, values: Mapping[str, str]) -> bool:
    if not isinstance(expression, Mapping):
        return False
    key = str(expression.get("key"))
    wanted = [str(v) for v in expression.get("values") or []]
    judge = _OPERATORS.get(str(expression.get("operator")))
    # An operator the scheduler would refuse matches nothing.
    return judge is not None and judge(key in values, values.get(key, ""), wanted)


def _compare(present: bool, value: str, wanted: list[str], *, greater: bool) -> bool:
    if not present or len(wanted) != 1:
        return False
    try:
        mine, theirs = int(value), int(wanted[0])
    except ValueError:
        return False
    return mine > theirs if greater else mine < theirs


_OPERATORS: dict[str, Callable[[bool, str, list[str]], bool]] = {
    "In": lambda present, value, wanted: present and value in wanted,
    "NotIn": lambda present, value, wanted: not present or value not in wanted,
    "Exists": lambda present, value, wanted: present,
    "DoesNotExist": lambda present, value, wanted: not present,
    "Gt": lambda present, value, wanted: _compare(present, value, wanted, greater=True),
    "Lt": lambda present, value, wanted: _compare(present, value, wanted, greater=False),
}
