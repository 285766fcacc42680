"""DRA on the real control plane: the test driver's ResourceSlices, the stock kube-scheduler's
DynamicResources plugin allocating claims made from templates by kube-controller-manager, and
`headroom.dra` naming the GPU each allocated claim holds. No kubelet and no kubelet plugin run:
the devices are allocated, never prepared."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from headroom.dra import GROUP_VERSION, GpuAsk, allocated_gpus, device_index, requested_gpus
from kubeapi.client import Kube, load_api_client
from tests.e2e.waiting import eventually
from tooling.dra import GIB, claim_template, device_class, resource_slice
from tooling.localcluster import LocalCluster

SCHEDULER = "headroom-e2e-dra"  # a profile of its own: no other test's pods reach it
RESOURCE = f"/apis/{GROUP_VERSION}"


@pytest.fixture(scope="module")
def dra(cluster: LocalCluster) -> Iterator[dict[str, Any]]:
    """Two nodes, node-a with two GPUs and node-b with one, their slices, a DeviceClass, and a
    stock kube-scheduler serving the profile SCHEDULER."""
    kube = Kube(load_api_client(str(cluster.kubeconfig)))
    label = uuid.uuid4().hex[:6]
    nodes = {f"dra-{label}-a": ["GPU-a0", "GPU-a1"], f"dra-{label}-b": ["GPU-b0"]}
    klass = f"gpu-{label}.headroom.dev"
    kube.request("POST", f"{RESOURCE}/deviceclasses", body=device_class(klass))
    for name, gpus in nodes.items():
        kube.request("POST", "/api/v1/nodes", body=_node(name))
        kube.request(
            "POST",
            f"{RESOURCE}/resourceslices",
            body=resource_slice(name, [(u, 80 * GIB) for u in gpus]),
        )
    scheduler = cluster.start_scheduler(
        {
            "apiVersion": "kubescheduler.config.k8s.io/v1",
            "kind": "KubeSchedulerConfiguration",
            "leaderElection": {"leaderElect": False},
            "profiles": [{"schedulerName": SCHEDULER}],
        },
        name="kube-scheduler-dra",
    )
    try:
        yield {"kube": kube, "nodes": list(nodes), "class": klass}
    finally:
        scheduler.stop()
        for name in nodes:
            cluster.kubectl("delete", "node", name, "--wait=false", check=False)
            cluster.kubectl("delete", "resourceslice", f"{name}-gpu.nvidia.com", check=False)
        cluster.kubectl("delete", "deviceclass", klass, check=False)


def _node(name: str) -> dict[str, Any]:
    room = {"cpu": "64", "memory": "512Gi", "pods": "110"}
    return {
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {"capacity": room, "allocatable": room},
    }


def _pod(name: str, *, template: str, node: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "schedulerName": SCHEDULER,
            "nodeSelector": {"kubernetes.io/hostname": node},
            "resourceClaims": [{"name": "gpu", "resourceClaimTemplateName": template}],
            "containers": [
                {"name": "model", "image": "model:1", "resources": {"claims": [{"name": "gpu"}]}}
            ],
        },
    }


def _claim_of(kube: Kube, pod: dict[str, Any]) -> dict[str, Any] | None:
    namespace = pod["metadata"]["namespace"]
    for entry in (pod.get("status") or {}).get("resourceClaimStatuses") or []:
        if entry.get("resourceClaimName"):
            path = f"{RESOURCE}/namespaces/{namespace}/resourceclaims/{entry['resourceClaimName']}"
            return kube.request("GET", path)
    return None


def _bound_and_allocated(kube: Kube, namespace: str, pod_name: str) -> dict[str, Any] | None:
    pod = kube.request("GET", f"/api/v1/namespaces/{namespace}/pods/{pod_name}")
    claim = _claim_of(kube, pod)
    allocated = claim is not None and (claim.get("status") or {}).get("allocation")
    return claim if pod["spec"].get("nodeName") and allocated else None


def _wait_allocated(kube: Kube, namespace: str, pod_name: str, *, what: str) -> dict[str, Any]:
    """The pod's claim, once the pod is bound and the claim allocated."""
    found: list[dict[str, Any]] = []

    def ready() -> bool:
        claim = _bound_and_allocated(kube, namespace, pod_name)
        if claim is not None:
            found.append(claim)
        return claim is not None

    eventually(ready, timeout_seconds=60, what=what)
    return found[-1]


def _slices(kube: Kube) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = kube.request("GET", f"{RESOURCE}/resourceslices")["items"]
    return items


def test_an_allocated_claim_names_the_gpu_it_holds_on_its_node(
    dra: dict[str, Any], namespace: str
) -> None:
    kube, node_b = dra["kube"], dra["nodes"][1]
    template = claim_template("one-gpu", device_class_name=dra["class"])
    template["metadata"]["namespace"] = namespace
    kube.request("POST", f"{RESOURCE}/namespaces/{namespace}/resourceclaimtemplates", body=template)
    assert requested_gpus(template["spec"]["spec"], device_classes=[dra["class"]]) == GpuAsk(1)
    kube.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/pods",
        body=_pod("m", template="one-gpu", node=node_b),
    )
    claim = _wait_allocated(
        kube, namespace, "m", what="the pod bound and its claim allocated by the stock allocator"
    )
    held = allocated_gpus(claim, device_index(_slices(kube)))
    assert [(g.request, g.device.node_name, g.device.uuid) for g in held] == [
        ("gpu", node_b, "GPU-b0")
    ]
    assert held[0].device.memory_bytes == 80 * GIB  # DRA's capacity: the total, not what is free


def test_the_allocator_counts_devices_two_fit_on_a_and_not_on_b(
    dra: dict[str, Any], namespace: str
) -> None:
    kube, (node_a, node_b) = dra["kube"], dra["nodes"]
    template = claim_template("two-gpus", count=2, device_class_name=dra["class"])
    template["metadata"]["namespace"] = namespace
    kube.request("POST", f"{RESOURCE}/namespaces/{namespace}/resourceclaimtemplates", body=template)
    pods = f"/api/v1/namespaces/{namespace}/pods"
    kube.request("POST", pods, body=_pod("on-a", template="two-gpus", node=node_a))
    kube.request("POST", pods, body=_pod("on-b", template="two-gpus", node=node_b))
    claim = _wait_allocated(kube, namespace, "on-a", what="the two-GPU pod placed on node-a")
    uuids = sorted(g.device.uuid or "" for g in allocated_gpus(claim, device_index(_slices(kube))))
    assert uuids == ["GPU-a0", "GPU-a1"]

    def unschedulable(name: str) -> bool:
        pod = kube.request("GET", f"{pods}/{name}")
        return any(
            c.get("type") == "PodScheduled" and c.get("reason") == "Unschedulable"
            for c in (pod.get("status") or {}).get("conditions") or []
        )

    eventually(lambda: unschedulable("on-b"), timeout_seconds=60, what="on-b Unschedulable")
    assert kube.request("GET", f"{pods}/on-b")["spec"].get("nodeName") is None
