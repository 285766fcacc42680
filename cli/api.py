"""The Kubernetes API paths `headroom status` reads, each one LIST: GPUNodes, pods and AIScalers,
and DRA's ResourceSlices, ResourceClaims (all namespaces) and DeviceTaintRules.

Imports no client library (`headroom --help` stays fast); the caller passes a `KubeApi`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from headroom import dra, names

if TYPE_CHECKING:
    from kubeapi.client import KubeApi

GPUNODES = f"/apis/{names.GROUP_VERSION}/{names.GPUNODE_PLURAL}"
PODS = "/api/v1/pods"
AISCALERS = f"/apis/{names.GROUP_VERSION}/{names.AISCALER_PLURAL}"
RESOURCE_SLICES = f"/apis/{dra.GROUP_VERSION}/resourceslices"
RESOURCE_CLAIMS = f"/apis/{dra.GROUP_VERSION}/resourceclaims"
DEVICE_TAINT_RULES = f"/apis/{dra.GROUP_VERSION}/devicetaintrules"


def list_items(kube: KubeApi, path: str) -> list[dict[str, Any]]:
    """The items of one collection, in one LIST (a status glance, not a controller)."""
    items: list[dict[str, Any]] = kube.request("GET", path).get("items") or []
    return items
