"""The scheduler's own filters `why` judges before Headroom's: cordon, node selector and required
affinity, and NoSchedule / NoExecute taints against the pod's tolerations, by Kubernetes' rules."""

from __future__ import annotations

from typing import Any

import pytest

from cli.prefilter import AFFINITY, CORDONED, TAINT, exclusion

GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}


def gpu_node(*, taints: list[dict[str, str]] | None = None, **spec: Any) -> dict[str, Any]:
    labels = {"nvidia.com/gpu.present": "true", "nvidia.com/gpu.memory": "81920"}
    return {"metadata": {"name": "n", "labels": labels}, "spec": {"taints": taints or [], **spec}}


def gpu_pod(*, tolerations: list[dict[str, str]] | None = None, **spec: Any) -> dict[str, Any]:
    return {"spec": {"tolerations": tolerations or [], **spec}}


def test_a_plain_node_reaches_the_extender() -> None:
    assert exclusion(gpu_pod(), gpu_node()) is None


def test_a_cordoned_node_is_kept_off_unless_the_pod_tolerates_it() -> None:
    assert exclusion(gpu_pod(), gpu_node(unschedulable=True)) == (
        CORDONED,
        "the node is cordoned (spec.unschedulable)",
    )
    tolerant = gpu_pod(
        tolerations=[{"key": "node.kubernetes.io/unschedulable", "operator": "Exists"}]
    )
    assert exclusion(tolerant, gpu_node(unschedulable=True)) is None


def memory_above(mib: int) -> dict[str, Any]:
    """The required affinity the webhook adds for a need of mib + 1 MiB."""
    expression = {"key": "nvidia.com/gpu.memory", "operator": "Gt", "values": [str(mib)]}
    terms = [{"matchExpressions": [expression]}]
    required = {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}
    return {"affinity": {"nodeAffinity": required}}


@pytest.mark.parametrize(
    ("spec", "passes"),
    [
        ({"nodeSelector": {"nvidia.com/gpu.present": "true"}}, True),
        ({"nodeSelector": {"pool": "a100"}}, False),
        (memory_above(30719), True),  # a 30Gi pod on an 80Gi GPU's node
        (memory_above(81920), False),  # a pod needing more than the node's GPUs have
    ],
)
def test_node_selector_and_required_affinity_are_judged(spec: dict[str, Any], passes: bool) -> None:
    verdict = exclusion(gpu_pod(**spec), gpu_node())
    assert (verdict is None) is passes
    if not passes:
        assert verdict is not None and verdict[0] == AFFINITY


@pytest.mark.parametrize(
    ("toleration", "tolerated"),
    [
        ({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}, True),
        ({"key": "nvidia.com/gpu", "operator": "Exists"}, True),  # every effect
        ({"operator": "Exists"}, True),  # an empty key with Exists: every taint
        ({"key": "nvidia.com/gpu", "value": "present"}, True),  # Equal is the default
        ({"key": "nvidia.com/gpu", "operator": "Equal", "value": "absent"}, False),
        ({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoExecute"}, False),
        ({"key": "other", "operator": "Exists"}, False),
        ({"value": "present"}, False),  # an empty key needs Exists
    ],
)
def test_taints_are_tolerated_by_kubernetes_rules(
    toleration: dict[str, str], tolerated: bool
) -> None:
    verdict = exclusion(gpu_pod(tolerations=[toleration]), gpu_node(taints=[GPU_TAINT]))
    if tolerated:
        assert verdict is None
    else:
        assert verdict == (
            TAINT,
            "the pod does not tolerate the taint nvidia.com/gpu=present:NoSchedule",
        )


def test_a_prefer_no_schedule_taint_keeps_no_pod_off() -> None:
    soft = {"key": "spot", "effect": "PreferNoSchedule"}
    assert exclusion(gpu_pod(), gpu_node(taints=[soft])) is None
