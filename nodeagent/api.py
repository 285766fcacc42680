"""Every Kubernetes API path the node agent uses: its Node, the GPUNode it owns, its node's
ResourceSlices and the DeviceTaintRules it writes for its node's unhealthy GPUs.

The publisher and the device tainter call these instead of building paths, so the agent's reach in
the API (and the RBAC it needs) is listed in one place. Errors are the client's typed `ApiError`s;
the caller decides. Every call has a timeout (the client's default unless one is given).
"""

from __future__ import annotations

from typing import Any

from headroom import names
from headroom.dra import GROUP_VERSION as DRA_GROUP_VERSION
from kubeapi.client import JsonDict, KubeApi, resource_path
from nodeagent.wire import GpuNodeObject, StatusPatch

MERGE_PATCH = "application/merge-patch+json"


def gpunode_path(name: str | None = None, *, subresource: str | None = None) -> str:
    """A GPUNode's path; the collection's without a name."""
    return resource_path(
        group=names.API_GROUP,
        version=names.API_VERSION,
        plural=names.GPUNODE_PLURAL,
        name=name,
        subresource=subresource,
    )


def get_node(kube: KubeApi, name: str) -> JsonDict:
    return kube.request("GET", resource_path(group="", version="v1", plural="nodes", name=name))


def get_gpunode(kube: KubeApi, name: str) -> JsonDict:
    return kube.request("GET", gpunode_path(name))


def create_gpunode(kube: KubeApi, gpunode: GpuNodeObject) -> JsonDict:
    return kube.request("POST", gpunode_path(), body=gpunode)


def patch_gpunode(kube: KubeApi, name: str, *, patch: JsonDict) -> JsonDict:
    """A merge patch of the object (its owner and spec), not its status."""
    return kube.request("PATCH", gpunode_path(name), body=patch, content_type=MERGE_PATCH)


def patch_gpunode_status(kube: KubeApi, name: str, *, patch: StatusPatch) -> JsonDict:
    return kube.request(
        "PATCH", gpunode_path(name, subresource="status"), body=patch, content_type=MERGE_PATCH
    )


DRA_GROUP, _, DRA_VERSION = DRA_GROUP_VERSION.partition("/")


def dra_path(plural: str, name: str | None = None) -> str:
    return resource_path(group=DRA_GROUP, version=DRA_VERSION, plural=plural, name=name)


def list_resource_slices(
    kube: KubeApi, node_name: str, *, timeout_seconds: float
) -> list[dict[str, Any]]:
    """The ResourceSlices of one node's devices (every driver's)."""
    found = kube.request(
        "GET",
        dra_path("resourceslices"),
        query={"fieldSelector": f"spec.nodeName={node_name}"},
        timeout_seconds=timeout_seconds,
    )
    items: list[dict[str, Any]] = found.get("items") or []
    return items


def list_device_taint_rules(
    kube: KubeApi, label_selector: str, *, timeout_seconds: float
) -> list[dict[str, Any]]:
    found = kube.request(
        "GET",
        dra_path("devicetaintrules"),
        query={"labelSelector": label_selector},
        timeout_seconds=timeout_seconds,
    )
    items: list[dict[str, Any]] = found.get("items") or []
    return items


def get_device_taint_rule(kube: KubeApi, name: str, *, timeout_seconds: float) -> JsonDict:
    return kube.request("GET", dra_path("devicetaintrules", name), timeout_seconds=timeout_seconds)


def create_device_taint_rule(kube: KubeApi, rule: JsonDict, *, timeout_seconds: float) -> JsonDict:
    return kube.request(
        "POST", dra_path("devicetaintrules"), body=rule, timeout_seconds=timeout_seconds
    )


def update_device_taint_rule(kube: KubeApi, rule: JsonDict, *, timeout_seconds: float) -> JsonDict:
    """A full update (PUT) carrying the rule's resourceVersion: a conflict if it changed."""
    name = str(rule["metadata"]["name"])
    return kube.request(
        "PUT", dra_path("devicetaintrules", name), body=rule, timeout_seconds=timeout_seconds
    )


def delete_device_taint_rule(
    kube: KubeApi, name: str, *, uid: str | None, timeout_seconds: float
) -> JsonDict:
    """Delete the rule; with `uid`, only that object (not one made again under its name)."""
    body = {"preconditions": {"uid": uid}} if uid else None
    return kube.request(
        "DELETE", dra_path("devicetaintrules", name), body=body, timeout_seconds=timeout_seconds
    )
