"""The Kubernetes API paths the CLI reads (`headroom status`, `kubectl headroom ...`), each one GET
or LIST: GPUNodes, Nodes, pods and AIScalers, and DRA's ResourceSlices, ResourceClaims,
ResourceClaimTemplates (all namespaces) and DeviceTaintRules.

Paths only: `cli.cluster.Cluster` reads them. Imports no client library (`--help` stays fast).
"""

from __future__ import annotations

from urllib.parse import quote

from headroom import dra, names

GPUNODES = f"/apis/{names.GROUP_VERSION}/{names.GPUNODE_PLURAL}"
NODES = "/api/v1/nodes"
PODS = "/api/v1/pods"
AISCALERS = f"/apis/{names.GROUP_VERSION}/{names.AISCALER_PLURAL}"
RESOURCE_SLICES = f"/apis/{dra.GROUP_VERSION}/resourceslices"
RESOURCE_CLAIMS = f"/apis/{dra.GROUP_VERSION}/resourceclaims"
RESOURCE_CLAIM_TEMPLATES = f"/apis/{dra.GROUP_VERSION}/resourceclaimtemplates"
DEVICE_TAINT_RULES = f"/apis/{dra.GROUP_VERSION}/devicetaintrules"


def pod(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{quote(namespace, safe='')}/pods/{quote(name, safe='')}"


def namespace(name: str) -> str:
    return f"/api/v1/namespaces/{quote(name, safe='')}"
