"""The pods, nodes and waits of tests/e2e/test_scheduler.py: reading a pod's node and scheduling
state, gated pods released onto a nominated node, asking the extender's filter directly, priority
classes, a WaitForFirstConsumer volume the test binds itself, and parking a pod then timing its
bind after a failover."""

from __future__ import annotations

import time
from typing import Any

from headroom import names
from kubeapi.client import ApiError
from tests.e2e.stack import Stack, eventually

PODS = "/api/v1/namespaces/{ns}/pods"


def get_pod(stack: Stack, namespace: str, name: str) -> dict[str, Any]:
    pod: dict[str, Any] = stack.kube.request("GET", f"{PODS.format(ns=namespace)}/{name}")
    return pod


def node_of(stack: Stack, namespace: str, name: str) -> str | None:
    return get_pod(stack, namespace, name)["spec"].get("nodeName") or None


def is_parked(pod: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "PodScheduled" and c.get("reason") == "Unschedulable"
        for c in pod.get("status", {}).get("conditions") or []
    )


def scheduling_of(stack: Stack, namespace: str, name: str) -> str:
    """The pod's PodScheduled condition and node, for a failure message."""
    pod = get_pod(stack, namespace, name)
    found = [
        c for c in pod.get("status", {}).get("conditions") or [] if c.get("type") == "PodScheduled"
    ]
    return f"node {pod['spec'].get('nodeName')!r}, PodScheduled {found}"


def requeued(stack: Stack) -> float:
    value = stack.metric("headroom_extender_requeued_pods")
    assert value is not None, "the extender's metrics are not served"
    return value


def node_name(stack: Stack, what: str) -> str:
    return f"sch-{stack.label}-{what}"


def gated_pod(stack: Stack, namespace: str, name: str, *, group: str) -> None:
    """A pod of 30Gi that asks to be spread (the emptiest node scores highest), held back by a
    scheduling gate until the test lifts it."""
    stack.kube.request(
        "POST",
        PODS.format(ns=namespace),
        body={
            "metadata": {
                "name": name,
                "annotations": {
                    names.GPU_MEMORY_ANNOTATION: "30Gi",
                    names.GPU_SHARING_ANNOTATION: "true",
                    names.PLACEMENT_POLICY_ANNOTATION: "spread",
                },
            },
            "spec": {
                "schedulerName": names.SCHEDULER_NAME,
                "schedulingGates": [{"name": "e2e.headroom.dev/hold"}],
                "nodeSelector": {"headroom-e2e": stack.label, "headroom-e2e-group": group},
                "containers": [{"name": "model", "image": "example.invalid/model"}],
            },
        },
    )


def release(stack: Stack, namespace: str, name: str, *, nominated: str | None) -> None:
    """Set the pod's nominated node (as preemption or a batch would leave it), then lift its
    gate: the scheduler sees both at once."""
    if nominated is not None:
        stack.kube.request(
            "PATCH",
            f"{PODS.format(ns=namespace)}/{name}/status",
            body={"status": {"nominatedNodeName": nominated}},
            content_type="application/merge-patch+json",
        )
    stack.kube.request(
        "PATCH",
        f"{PODS.format(ns=namespace)}/{name}",
        body={"spec": {"schedulingGates": None}},
        content_type="application/merge-patch+json",
    )


def extender_passes(stack: Stack, namespace: str, name: str, node: str) -> bool:
    """Whether the extender's filter passes `node` for the pod now (its view has the report)."""
    import json  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415

    body = {"Pod": get_pod(stack, namespace, name), "NodeNames": [node]}
    request = urllib.request.Request(
        f"http://127.0.0.1:{stack.port}/filter",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return node in (json.loads(response.read()).get("NodeNames") or [])


def priority_class(stack: Stack, name: str, value: int) -> None:
    try:
        stack.kube.request(
            "POST",
            "/apis/scheduling.k8s.io/v1/priorityclasses",
            body={"metadata": {"name": name}, "value": value},
        )
    except ApiError as exc:
        if exc.status != 409:
            raise


def wffc_volume(stack: Stack, namespace: str, node: str) -> None:
    """A local PersistentVolume on `node` and a claim of a WaitForFirstConsumer class: the
    scheduler binds them in PreBind and waits there until the claim is fully bound, which only
    this test does: the cluster runs no PV binder, so the test does its two writes."""
    klass = f"wffc-{stack.label}"
    stack.kube.request(
        "POST",
        "/apis/storage.k8s.io/v1/storageclasses",
        body={
            "metadata": {"name": klass},
            "provisioner": "kubernetes.io/no-provisioner",
            "volumeBindingMode": "WaitForFirstConsumer",
        },
    )
    stack.kube.request(
        "POST",
        "/api/v1/persistentvolumes",
        body={
            "metadata": {"name": f"pv-{stack.label}"},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": klass,
                "local": {"path": "/models"},
                "nodeAffinity": {
                    "required": {
                        "nodeSelectorTerms": [
                            {
                                "matchExpressions": [
                                    {
                                        "key": "headroom-e2e-group",
                                        "operator": "In",
                                        "values": ["prebind"],
                                    }
                                ]
                            }
                        ]
                    }
                },
            },
        },
    )
    # What the PV binder does for a new volume: mark it Available, the only phase matched.
    stack.kube.request(
        "PATCH",
        f"/api/v1/persistentvolumes/pv-{stack.label}/status",
        body={"status": {"phase": "Available"}},
        content_type="application/merge-patch+json",
    )
    stack.kube.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/persistentvolumeclaims",
        body={
            "metadata": {"name": "weights"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": klass,
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    )


def complete_volume_binding(stack: Stack, namespace: str) -> None:
    """What the PV binder would write: the claim names its volume and is marked bound."""
    completed = {"pv.kubernetes.io/bind-completed": "yes"}
    stack.kube.request(
        "PATCH",
        f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/weights",
        body={"metadata": {"annotations": completed}, "spec": {"volumeName": f"pv-{stack.label}"}},
        content_type="application/merge-patch+json",
    )


def park_one(stack: Stack, namespace: str, what: str) -> str:
    node = node_name(stack, what)
    stack.add_node(node, [80], used_gi=80, group=what)
    stack.pod(namespace, what, memory="40Gi", group=what)
    eventually(lambda: is_parked(get_pod(stack, namespace, what)), what=f"{what} parked")
    return node


def bound_within(stack: Stack, namespace: str, name: str, seconds: float, *, since: float) -> None:
    eventually(
        lambda: node_of(stack, namespace, name) is not None,
        timeout_seconds=60,
        what=f"{name} bound",
    )
    waited = time.monotonic() - since
    assert waited <= seconds, f"{name} bound {waited:.1f}s after the extender led again"


def leading_again(stack: Stack) -> float:
    eventually(stack.ready, timeout_seconds=120, what="the extender leading again")
    return time.monotonic()
