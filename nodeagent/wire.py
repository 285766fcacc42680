"""The node agent's wire formats as TypedDicts, and the pure builders of the GPUNode object.

The GPUNode's `status` is `headroom.report.report_to_status`; what lives here is the rest of the
object: named after the node, `spec.nodeName`, and owned by the Node (not as its controller, and
without blocking the Node's deletion) so the garbage collector removes it with the Node.
"""

from __future__ import annotations

from typing import Any, TypedDict

from headroom import names


class OwnerReference(TypedDict):
    apiVersion: str
    kind: str
    name: str
    uid: str
    controller: bool
    blockOwnerDeletion: bool


class GpuNodeMetadata(TypedDict):
    name: str
    ownerReferences: list[OwnerReference]


class GpuNodeSpec(TypedDict):
    nodeName: str


class GpuNodeObject(TypedDict):
    apiVersion: str
    kind: str
    metadata: GpuNodeMetadata
    spec: GpuNodeSpec


class StatusPatch(TypedDict):
    """A JSON merge patch of the `/status` subresource."""

    status: dict[str, Any]


def owner_reference(node_name: str, node_uid: str) -> OwnerReference:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "name": node_name,
        "uid": node_uid,
        "controller": False,
        "blockOwnerDeletion": False,
    }


def gpunode_object(node_name: str, node_uid: str) -> GpuNodeObject:
    return {
        "apiVersion": names.GROUP_VERSION,
        "kind": names.GPUNODE_KIND,
        "metadata": {"name": node_name, "ownerReferences": [owner_reference(node_name, node_uid)]},
        "spec": {"nodeName": node_name},
    }


def is_owned_by(obj: dict[str, Any], node_uid: str) -> bool:
    """True when the object already names this Node as owner and says which node it is about."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    owned = any(
        isinstance(r, dict) and r.get("kind") == "Node" and r.get("uid") == node_uid for r in refs
    )
    node_name = (obj.get("spec") or {}).get("nodeName")
    return owned and node_name == (obj.get("metadata") or {}).get("name")
