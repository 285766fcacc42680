"""DRA for the e2e tests that run the headroom scheduler: the test driver's ResourceSlice for a
node (its GPUs under the UUIDs the node's GPUNode report gives them), the DeviceClass the extender
counts by default, a claim template, and a pod spec whose GPU comes from a claim."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from headroom.dra import GROUP_VERSION
from kubeapi.client import Conflict
from tests.e2e.stack import Stack, gpu_uuid
from tooling.dra import GIB, claim_template, device_class, resource_slice
from tooling.localcluster import KUBERNETES_VERSION

RESOURCE = f"/apis/{GROUP_VERSION}"


def needs_kubernetes(minor: int, what: str) -> pytest.MarkDecorator:
    """Skip, saying why, on a control plane older than 1.`minor` (`KUBERNETES_VERSION=1.34.4`
    runs the suite on 1.34, where these DRA features are alpha and off)."""
    have = int(KUBERNETES_VERSION.split(".")[1])
    return pytest.mark.skipif(
        have < minor,
        reason=f"{what} needs Kubernetes 1.{minor} or later; this control plane is "
        f"{KUBERNETES_VERSION}",
    )


TEMPLATE = "one-gpu"  # the claim template every DRA test pod here names


def ensure_device_class(stack: Stack) -> None:
    """The NVIDIA driver's DeviceClass, which the extender counts by default (shared by modules:
    made once, never deleted)."""
    with contextlib.suppress(Conflict):
        stack.kube.request("POST", f"{RESOURCE}/deviceclasses", body=device_class())


def publish_gpus(stack: Stack, node: str, totals_gi: list[float], **options: Any) -> None:
    """The node's ResourceSlice, labelled with the module's label for clean-up."""
    slice_ = resource_slice(
        node, [(gpu_uuid(node, i), int(t * GIB)) for i, t in enumerate(totals_gi)], **options
    )
    slice_["metadata"]["labels"] = {"headroom-e2e": stack.label}
    stack.kube.request("POST", f"{RESOURCE}/resourceslices", body=slice_)


def remove_slices(stack: Stack) -> None:
    stack.cluster.kubectl(
        "delete", "resourceslices", "-l", f"headroom-e2e={stack.label}", "--wait=false", check=False
    )


def add_template(stack: Stack, namespace: str, name: str = TEMPLATE, **options: Any) -> None:
    stack.kube.request(
        "POST",
        f"{RESOURCE}/namespaces/{namespace}/resourceclaimtemplates",
        body=claim_template(name, **options),
    )


def claim_spec(containers: list[dict[str, Any]], *, template: str = TEMPLATE) -> dict[str, Any]:
    """Pod spec parts for a GPU from a claim made from `template`, used by every container."""
    return {
        "resourceClaims": [{"name": "gpu", "resourceClaimTemplateName": template}],
        "containers": [
            {**c, "resources": {**c.get("resources", {}), "claims": [{"name": "gpu"}]}}
            for c in containers
        ],
    }
