"""Claim pods placed by live memory on the real 1.37 control plane: the headroom scheduler profile
as shipped (the stock DynamicResources plugin allocates, the extender filters and binds), the test
DRA driver's ResourceSlices publishing the same GPU UUIDs the GPUNode reports carry, and claims
made from templates by kube-controller-manager. No kubelet: pods are bound, never run."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest

from headroom import names
from headroom.dra import allocated_gpus, device_index
from tests.e2e.dra_nodes import (
    RESOURCE,
    TEMPLATE,
    add_template,
    claim_spec,
    ensure_device_class,
    needs_kubernetes,
    publish_gpus,
    remove_slices,
)
from tests.e2e.scheduler_pods import get_pod, node_of, scheduling_of
from tests.e2e.stack import Stack, eventually, gpu_uuid, running_stack
from tooling.dra import GIB, device_taint_rule
from tooling.localcluster import LocalCluster

SHARE = "share-20gi"  # a claim template for 20Gi of a shared GPU (consumable capacity)


@pytest.fixture(scope="module")
def stack(cluster: LocalCluster) -> Iterator[Stack]:
    with running_stack(cluster) as s:
        ensure_device_class(s)
        yield s
        remove_slices(s)


def dra_node(stack: Stack, name: str, totals_gi: list[float], **report: Any) -> str:
    """A node of this module with its GPU report and the ResourceSlice publishing its GPUs."""
    node = f"dra-{stack.label}-{name}"
    stack.add_node(node, totals_gi, group=name, **report)
    publish_gpus(stack, node, totals_gi)
    return node


def claim_pod(
    stack: Stack,
    namespace: str,
    name: str,
    *,
    memory: str | None,
    groups: list[str],
    template: str = TEMPLATE,
) -> None:
    """A pod of the headroom scheduler whose GPU comes from a claim made from TEMPLATE: no
    `nvidia.com/gpu` anywhere. It may go to the nodes of `groups`."""
    stack.kube.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/pods",
        body={
            "metadata": {
                "name": name,
                "annotations": {} if memory is None else {names.GPU_MEMORY_ANNOTATION: memory},
            },
            "spec": {
                "schedulerName": names.SCHEDULER_NAME,
                "affinity": _only(stack, groups),
                **claim_spec(
                    [{"name": "model", "image": "example.invalid/model"}], template=template
                ),
            },
        },
    )


def _only(stack: Stack, groups: list[str]) -> dict[str, Any]:
    terms = [
        {"key": "headroom-e2e", "operator": "In", "values": [stack.label]},
        {"key": "headroom-e2e-group", "operator": "In", "values": groups},
    ]
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": terms}]
            }
        }
    }


@pytest.fixture
def dra_namespace(stack: Stack, namespace: str) -> str:
    add_template(stack, namespace)
    add_template(stack, namespace, SHARE, memory=20 * GIB)
    return namespace


def held_gpus(stack: Stack, namespace: str, pod_name: str) -> list[str]:
    """The GPU UUIDs the pod's allocated claims hold, by the slices."""
    pod = get_pod(stack, namespace, pod_name)
    slices = stack.kube.request("GET", f"{RESOURCE}/resourceslices")["items"]
    index = device_index(slices)
    held = []
    for status in pod.get("status", {}).get("resourceClaimStatuses") or []:
        claim = stack.kube.request(
            "GET",
            f"{RESOURCE}/namespaces/{namespace}/resourceclaims/{status['resourceClaimName']}",
        )
        held += [g.device.uuid for g in allocated_gpus(claim, index) if g.device.uuid]
    return held


def bind_errors(stack: Stack) -> float:
    value = _labelled_metric(stack, "headroom_extender_binds_total", 'result="error"')
    return value or 0.0


def _labelled_metric(stack: Stack, name: str, label: str) -> float | None:
    import urllib.request  # noqa: PLC0415

    with urllib.request.urlopen(f"http://127.0.0.1:{stack.port}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + "{") and label in line:
                return float(line.rsplit(" ", 1)[1])
    return None


def test_a_claim_only_pod_goes_where_the_memory_is_really_free(
    stack: Stack, dra_namespace: str
) -> None:
    busy = dra_node(stack, "busy", [80], used_gi=70)  # held outside Kubernetes
    idle = dra_node(stack, "idle", [80])
    claim_pod(stack, dra_namespace, "llm", memory="20Gi", groups=["busy", "idle"])
    eventually(
        lambda: node_of(stack, dra_namespace, "llm") is not None,
        what="the claim pod bound",
    )
    assert node_of(stack, dra_namespace, "llm") == idle
    assert held_gpus(stack, dra_namespace, "llm") == [gpu_uuid(idle, 0)]
    assert node_of(stack, dra_namespace, "llm") != busy


def test_the_allocators_choice_without_the_memory_is_refused_once_then_avoided(
    stack: Stack, dra_namespace: str
) -> None:
    """The allocator takes a node's devices in order, so it chooses GPU 0, which memory held
    outside Kubernetes fills, although GPU 1 is free. Bind refuses it; the filter then keeps the
    node out while GPU 0 stays as it is, so the scheduler does not loop on it; once GPU 0's memory
    is freed, the pod is bound there."""
    node = dra_node(stack, "first", [80, 80], used_per_gpu_gi=[70, 0])
    before = bind_errors(stack)
    claim_pod(stack, dra_namespace, "waits", memory="20Gi", groups=["first"])

    def parked_by_the_miss() -> bool:
        conditions = get_pod(stack, dra_namespace, "waits")["status"].get("conditions") or []
        return any(
            c.get("type") == "PodScheduled" and "DRA allocator chooses" in c.get("message", "")
            for c in conditions
        )

    try:
        eventually(parked_by_the_miss, what="the node kept out after a refused bind")
    except AssertionError:
        print(
            scheduling_of(stack, dra_namespace, "waits"), held_gpus(stack, dra_namespace, "waits")
        )
        print(stack.log_path and stack.log_path.read_text()[-3000:])
        raise
    refused = bind_errors(stack) - before
    assert refused >= 1, scheduling_of(stack, dra_namespace, "waits")
    assert node_of(stack, dra_namespace, "waits") is None
    # No loop: each change to the node makes the scheduler try the pod again, and each try is
    # turned away by the filter (its count of memory refusals grows), never by another bind.
    for poke in range(3):
        turned_away = filter_refusals(stack)
        stack.kube.request(
            "PATCH",
            f"/api/v1/nodes/{node}",
            content_type="application/merge-patch+json",
            body={"metadata": {"labels": {"headroom-e2e-poke": str(poke)}}},
        )
        eventually(partial(more_refusals, stack, turned_away), what="another filter round")
    assert bind_errors(stack) - before == refused
    assert node_of(stack, dra_namespace, "waits") is None
    stack.report(node, [80, 80], used_per_gpu_gi=[0, 0])
    eventually(
        lambda: node_of(stack, dra_namespace, "waits") is not None,
        what="the pod bound once GPU 0's memory is free",
    )
    assert held_gpus(stack, dra_namespace, "waits") == [gpu_uuid(node, 0)]


def more_refusals(stack: Stack, seen: float) -> bool:
    return filter_refusals(stack) > seen


def filter_refusals(stack: Stack) -> float:
    return _labelled_metric(stack, "headroom_extender_filter_nodes_total", 'result="memory"') or 0


def test_a_lost_gpu_is_not_given_to_a_claim(stack: Stack, dra_namespace: str) -> None:
    lost = dra_node(stack, "lost", [80])
    stack.report(lost, [80], unhealthy=[0])
    fine = dra_node(stack, "fine", [80])
    claim_pod(stack, dra_namespace, "safe", memory="20Gi", groups=["lost", "fine"])
    eventually(
        lambda: node_of(stack, dra_namespace, "safe") is not None,
        what="the claim pod bound",
    )
    assert held_gpus(stack, dra_namespace, "safe") == [gpu_uuid(fine, 0)]


def test_a_burst_of_30_claim_pods_with_the_extender_restarted_takes_no_gpu_without_room(
    stack: Stack, dra_namespace: str
) -> None:
    """Room for 7: three nodes whose second GPU is held outside Kubernetes, two all free. The
    stock allocator alone would hand out all ten GPUs; with Headroom in the path, exactly the
    seven with room are taken, even with the extender killed and restarted mid-burst (its
    in-flight state gone: it rebuilds its view from the claims and pods)."""
    nodes = [
        dra_node(stack, f"burst{n}", [80, 80], used_per_gpu_gi=[0, 70] if n < 3 else [0, 0])
        for n in range(5)
    ]
    groups = [f"burst{n}" for n in range(5)]
    for i in range(30):
        claim_pod(stack, dra_namespace, f"b-{i:02d}", memory="20Gi", groups=groups)
        if i == 12:
            eventually(lambda: len(bound(stack, dra_namespace)) >= 3, what="some pods bound")
            stack.kill_extender()
            stack.start_extender()
    eventually(lambda: len(bound(stack, dra_namespace)) == 7, what="7 pods bound")
    held = [
        g for name in bound(stack, dra_namespace) for g in held_gpus(stack, dra_namespace, name)
    ]
    busy = {gpu_uuid(node, 1) for node in nodes[:3]}
    assert len(held) == len(set(held)) == 7, held
    assert not busy & set(held), held
    # The rest wait, each turned away for memory (by fit or by a miss), none bound later.
    for pod in stack.pods(dra_namespace):
        if not pod["spec"].get("nodeName"):
            name = pod["metadata"]["name"]
            eventually(
                partial(turned_away_for_memory, stack, dra_namespace, name),
                what=f"{name} turned away for memory",
            )
    assert len(bound(stack, dra_namespace)) == 7


def turned_away_for_memory(stack: Stack, namespace: str, name: str) -> bool:
    return "needs 20Gi" in scheduling_of(stack, namespace, name)


def bound(stack: Stack, namespace: str) -> list[str]:
    return [p["metadata"]["name"] for p in stack.pods(namespace) if p["spec"].get("nodeName")]


@needs_kubernetes(36, "consumable capacity (DRAConsumableCapacity, beta and on in 1.36)")
def test_claims_share_a_gpu_by_its_live_memory_not_its_declared_capacity(
    stack: Stack, dra_namespace: str
) -> None:
    """One GPU published for sharing (consumable `memory`), 20Gi of it held outside Kubernetes.
    DRA alone would give four 20Gi claims its 80Gi; Headroom lets three in: what really fits."""
    node = f"dra-{stack.label}-share"
    stack.add_node(node, [80], group="share", used_gi=20)
    publish_gpus(stack, node, [80], shared=True)
    for i in range(4):
        claim_pod(stack, dra_namespace, f"s-{i}", memory=None, groups=["share"], template=SHARE)
    eventually(lambda: len(bound(stack, dra_namespace)) == 3, what="three claims on the GPU")
    held = [
        g for name in bound(stack, dra_namespace) for g in held_gpus(stack, dra_namespace, name)
    ]
    assert held == [gpu_uuid(node, 0)] * 3
    waiting = next(
        p["metadata"]["name"] for p in stack.pods(dra_namespace) if not p["spec"].get("nodeName")
    )
    eventually(
        partial(turned_away_for_memory, stack, dra_namespace, waiting),
        what="the fourth turned away for memory",
    )
    assert len(bound(stack, dra_namespace)) == 3


@needs_kubernetes(37, "DeviceTaintRules in resource.k8s.io/v1 (GA in 1.37)")
def test_a_device_taint_rule_keeps_claims_off_the_gpu(stack: Stack, dra_namespace: str) -> None:
    node = dra_node(stack, "taint", [80, 80])
    rule = device_taint_rule(
        f"e2e-{stack.label}", pool=node, device="gpu-0", key="e2e.headroom.dev/broken"
    )
    stack.kube.request("POST", f"{RESOURCE}/devicetaintrules", body=rule)
    try:
        claim_pod(stack, dra_namespace, "t", memory="20Gi", groups=["taint"])
        eventually(lambda: node_of(stack, dra_namespace, "t") is not None, what="the pod bound")
        assert held_gpus(stack, dra_namespace, "t") == [gpu_uuid(node, 1)]
    finally:
        stack.kube.request("DELETE", f"{RESOURCE}/devicetaintrules/e2e-{stack.label}")
