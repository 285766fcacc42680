"""Every Kubernetes API path the extender uses, each behind one small typed function.

The extender's components call these instead of building paths themselves, so what the extender
reads and writes (and so the RBAC it needs) is listed in one place. The functions only send the
request: errors are the client's typed `ApiError`s, and the callers decide what each one means.
"""

from __future__ import annotations

from typing import Any

from headroom import names
from kubeapi.client import JsonDict, KubeApi, resource_path

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"

# The collections the extender's watch caches mirror.
GPUNODES = resource_path(
    group=names.API_GROUP, version=names.API_VERSION, plural=names.GPUNODE_PLURAL
)
AISCALERS = resource_path(
    group=names.API_GROUP, version=names.API_VERSION, plural=names.AISCALER_PLURAL
)
NODES = resource_path(group="", version="v1", plural="nodes")
PODS = resource_path(group="", version="v1", plural="pods")
# DRA (resource.k8s.io/v1): where claims' GPUs come from. Optional: an older cluster has none.
DRA_GROUP, DRA_VERSION = "resource.k8s.io", "v1"
RESOURCESLICES = resource_path(group=DRA_GROUP, version=DRA_VERSION, plural="resourceslices")
RESOURCECLAIMS = resource_path(group=DRA_GROUP, version=DRA_VERSION, plural="resourceclaims")
RESOURCECLAIMTEMPLATES = resource_path(
    group=DRA_GROUP, version=DRA_VERSION, plural="resourceclaimtemplates"
)
DEVICETAINTRULES = resource_path(group=DRA_GROUP, version=DRA_VERSION, plural="devicetaintrules")


def _claim_path(namespace: str, name: str, subresource: str | None = None) -> str:
    return resource_path(
        group=DRA_GROUP,
        version=DRA_VERSION,
        plural="resourceclaims",
        namespace=namespace,
        name=name,
        subresource=subresource,
    )


def get_claim(kube: KubeApi, *, namespace: str, name: str) -> JsonDict:
    """A ResourceClaim as the API server has it now (bind reads the allocation PreBind wrote)."""
    return kube.request("GET", _claim_path(namespace, name))


def put_claim_status(kube: KubeApi, claim: JsonDict) -> JsonDict:
    """Replace a claim's status; the claim's resourceVersion makes it fail (409) if the claim
    changed since it was read."""
    meta = claim.get("metadata") or {}
    path = _claim_path(str(meta.get("namespace", "")), str(meta.get("name", "")), "status")
    return kube.request("PUT", path, body=claim)


def _pod_path(namespace: str, name: str, subresource: str | None = None) -> str:
    return resource_path(
        group="",
        version="v1",
        plural="pods",
        namespace=namespace,
        name=name,
        subresource=subresource,
    )


def get_pod(kube: KubeApi, *, namespace: str, name: str) -> JsonDict:
    return kube.request("GET", _pod_path(namespace, name))


def post_binding(kube: KubeApi, *, namespace: str, name: str, binding: JsonDict) -> JsonDict:
    return kube.request("POST", _pod_path(namespace, name, "binding"), body=binding)


def patch_pod(kube: KubeApi, *, namespace: str, name: str, patch: JsonDict) -> JsonDict:
    """A JSON merge patch of the pod (the requeuer's annotation)."""
    return kube.request("PATCH", _pod_path(namespace, name), body=patch, content_type=MERGE_PATCH)


def patch_pod_status(kube: KubeApi, *, namespace: str, name: str, patch: JsonDict) -> JsonDict:
    """A strategic merge patch of the pod's status: conditions merge by type, so the others
    stay as they are."""
    return kube.request(
        "PATCH",
        _pod_path(namespace, name, "status"),
        body=patch,
        content_type=STRATEGIC_MERGE_PATCH,
    )


def read_lease(kube: KubeApi, *, namespace: str, name: str, timeout_seconds: float) -> JsonDict:
    return kube.request(
        "GET",
        resource_path(
            group="coordination.k8s.io",
            version="v1",
            plural="leases",
            namespace=namespace,
            name=name,
        ),
        timeout_seconds=timeout_seconds,
    )


def patch_scaler_status(kube: KubeApi, *, namespace: str, name: str, status: JsonDict) -> JsonDict:
    path = resource_path(
        group=names.API_GROUP,
        version=names.API_VERSION,
        plural=names.AISCALER_PLURAL,
        namespace=namespace,
        name=name,
        subresource="status",
    )
    return kube.request("PATCH", path, body={"status": status}, content_type=MERGE_PATCH)


def post_event(kube: KubeApi, *, namespace: str, event: JsonDict) -> JsonDict:
    return kube.request(
        "POST",
        resource_path(group="", version="v1", plural="events", namespace=namespace),
        body=event,
    )


def group_path(api_version: str) -> str:
    """The discovery path of an API group version: `/api/v1` for the core group."""
    return "/api/v1" if api_version == "v1" else f"/apis/{api_version}"


def api_resources(kube: KubeApi, api_version: str) -> JsonDict:
    """The APIResourceList of a group version (the plural of each kind)."""
    return kube.request("GET", group_path(api_version))


def object_path(api_version: str, *, namespace: str, plural: str, name: str) -> str:
    """The path of a namespaced object of any group: a scaler target."""
    group, _, version = api_version.rpartition("/")
    return resource_path(
        group=group, version=version, plural=plural, namespace=namespace, name=name
    )


def get_target(kube: KubeApi, path: str) -> JsonDict:
    return kube.request("GET", path)


def get_scale(kube: KubeApi, target_path: str) -> JsonDict:
    return kube.request("GET", f"{target_path}/scale")


def patch_scale(kube: KubeApi, target_path: str, *, replicas: int) -> JsonDict:
    return kube.request(
        "PATCH",
        f"{target_path}/scale",
        body={"spec": {"replicas": replicas}},
        content_type=MERGE_PATCH,
    )


def list_hpas(kube: KubeApi, namespace: str) -> list[Any]:
    """The namespace's HorizontalPodAutoscalers (autoscaling/v1: every cluster serves it)."""
    listing = kube.request(
        "GET",
        resource_path(
            group="autoscaling",
            version="v1",
            plural="horizontalpodautoscalers",
            namespace=namespace,
        ),
    )
    return list(listing.get("items") or [])
