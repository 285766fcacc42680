"""The demo as the DRA driver of its `dra: true` node groups, and what its kubelet and its view
read of claims.

The driver part (`install`): the DeviceClass `gpu.nvidia.com` that NVIDIA's driver installs, and
per DRA node one ResourceSlice publishing its GPUs under the same UUIDs its fake NVML reports (so
the GPUNode reports and the slices agree), with consumable memory for `draShared` groups
(`tooling.dra`, the e2e tests' driver). The stock kube-scheduler allocates from these slices and
kube-controller-manager makes each pod's claim from the workload's template (`template`).

No kubelet plugin runs: the demo's kubelet reads a bound pod's allocated claims (`prepare`), as a
kubelet would hand them to the driver, and starts the pod's processes on those GPUs. `held`
names, for every pod with allocated claims, the GPU UUID each claim holds, from the claim's
allocation and the slices (`headroom.dra.allocated_gpus`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from headroom.demand import GpuDemand
from headroom.dra import GROUP_VERSION, DeviceKey, SliceDevice, allocated_gpus, device_index
from headroom.fields import FieldError
from headroom.podclaims import DraLookups, pod_gpus
from kubeapi.client import Conflict, KubeApi, NotFound
from tooling.demo.model import Workload
from tooling.demo.nodes import SimNode
from tooling.dra import claim_template, device_class, resource_slice

RESOURCE = f"/apis/{GROUP_VERSION}"
CLAIM_NAME = "gpu"  # the pod's entry in spec.resourceClaims and its containers' resources.claims


def install(kube: KubeApi, nodes: Iterable[SimNode]) -> None:
    """The DeviceClass (kept when it exists) and the ResourceSlice of every DRA node."""
    with contextlib.suppress(Conflict):
        kube.request("POST", f"{RESOURCE}/deviceclasses", body=device_class())
    for node in nodes:
        if node.group.dra:
            kube.request("POST", f"{RESOURCE}/resourceslices", body=node_slice(node))


def node_slice(node: SimNode) -> dict[str, Any]:
    group = node.group
    return resource_slice(
        node.name,
        [(node.gpu_uuid(i), group.gpu_memory_bytes) for i in range(group.gpus)],
        product=group.product,
        shared=group.dra_shared,
    )


# -- a workload's claims -------------------------------------------------------------------------
def template_name(workload: Workload) -> str:
    return f"{workload.name}-gpu"


def template(workload: Workload) -> dict[str, Any]:
    """The ResourceClaimTemplate each of the workload's pods gets its claim from."""
    assert workload.claim is not None
    return claim_template(
        template_name(workload),
        count=workload.claim.count,
        memory=workload.claim.memory_bytes or None,
    )


def create_template(kube: KubeApi, namespace: str, workload: Workload) -> None:
    kube.request(
        "POST",
        f"{RESOURCE}/namespaces/{namespace}/resourceclaimtemplates",
        body=template(workload),
    )


def claim_pod_spec(workload: Workload, spec: dict[str, Any]) -> None:
    """Give a pod spec the workload's claim: `spec.resourceClaims`, and `resources.claims` in
    every container (no `nvidia.com/gpu`)."""
    spec["resourceClaims"] = [
        {"name": CLAIM_NAME, "resourceClaimTemplateName": template_name(workload)}
    ]
    for container in spec["containers"]:
        container.setdefault("resources", {})["claims"] = [{"name": CLAIM_NAME}]


# -- reading claims ------------------------------------------------------------------------------
def devices(kube: KubeApi) -> dict[DeviceKey, SliceDevice]:
    """Every published device, from the ResourceSlices as the API server has them."""
    return device_index(kube.request("GET", f"{RESOURCE}/resourceslices")["items"])


def prepare(
    kube: KubeApi, pod: Mapping[str, Any], node: SimNode, index: Mapping[DeviceKey, SliceDevice]
) -> tuple[GpuDemand, tuple[int, ...]] | str | None:
    """A bound claim pod's demand and the GPU indexes its allocated claims hold on `node`; None
    while a claim is not allocated yet (the next pass looks again); a string says why it cannot
    start (a claim holding GPUs elsewhere)."""
    namespace = str(pod["metadata"]["namespace"])

    def lookup(plural: str) -> Any:
        def get(ns: str, name: str) -> Mapping[str, Any] | None:
            try:
                found: Mapping[str, Any] = kube.request(
                    "GET", f"{RESOURCE}/namespaces/{ns}/{plural}/{name}"
                )
            except NotFound:
                return None
            return found

        return get

    lookups = DraLookups(
        claim=lookup("resourceclaims"),
        template=lookup("resourceclaimtemplates"),
        devices=index,
    )
    try:
        claims = pod_gpus(pod, lookups)
        demand = GpuDemand.from_pod(pod, claims=claims)
    except FieldError as exc:
        return f"claims of {namespace}/{pod['metadata']['name']}: {exc}"
    if demand is None or not claims.allocated:
        return None
    by_uuid = {node.gpu_uuid(i): i for i in range(node.group.gpus)}
    elsewhere = [u for u in claims.gpu_uuids if u not in by_uuid]
    if elsewhere:
        return f"its claims hold {', '.join(elsewhere)}, not a GPU of {node.name}"
    return demand, tuple(sorted(by_uuid[u] for u in claims.gpu_uuids))


@dataclass(frozen=True)
class Held:
    """A GPU a pod holds through one of its claims."""

    pod: str
    node: str
    claim: str
    uuid: str
    gpu: int | None  # its index on the node, when the node is one of the demo's


def held(
    pods: Iterable[Mapping[str, Any]],
    claims: Iterable[Mapping[str, Any]],
    index: Mapping[DeviceKey, SliceDevice],
    nodes: Mapping[str, SimNode],
) -> list[Held]:
    """For each bound pod's allocated claims (`status.resourceClaimStatuses`), the GPUs they hold.
    An unbound pod's allocation is the allocator's choice that bind may still refuse (and undo),
    not a GPU given to it."""
    by_name = {str(c["metadata"]["name"]): c for c in claims}
    out: list[Held] = []
    for pod in pods:
        if not (pod.get("spec") or {}).get("nodeName"):
            continue
        for entry in (pod.get("status") or {}).get("resourceClaimStatuses") or []:
            claim = by_name.get(str(entry.get("resourceClaimName")))
            if claim is None:
                continue
            try:
                gpus = allocated_gpus(claim, index)
            except FieldError:
                continue
            for gpu in gpus:
                device = gpu.device
                node = nodes.get(device.node_name)
                uuids = {node.gpu_uuid(i): i for i in range(node.group.gpus)} if node else {}
                out.append(
                    Held(
                        pod=str(pod["metadata"]["name"]),
                        node=device.node_name,
                        claim=str(claim["metadata"]["name"]),
                        uuid=device.uuid or "",
                        gpu=uuids.get(device.uuid or ""),
                    )
                )
    return out
