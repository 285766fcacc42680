"""Every Kubernetes API path the node agent uses: its Node, and the GPUNode it owns.

The publisher calls these instead of building paths, so the agent's reach in the API (and the RBAC
it needs) is listed in one place. Errors are the client's typed `ApiError`s; the caller decides.
"""

from __future__ import annotations

from headroom import names
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
