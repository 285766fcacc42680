"""Why a managed pod is refused, when its demand is understood: pure.

A profile's limits (`maxGpus`, its sharing switch) and the rules of shared mode through the
annotation (`headroom.dev/gpu-sharing`): such a pod gets its GPU only when Headroom's scheduler
binds it, through `NVIDIA_VISIBLE_DEVICES`, so it must neither ask the device plugin for a GPU nor
be placed by anyone else. A pod sharing a GPU through a DRA claim (a `memory` capacity request) is
the DRA allocator's and driver's to place and set up, so the shared-mode rules do not apply to it.
Each returns the denial's message, naming the field, or "".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from headroom import names
from headroom.demand import GpuDemand
from webhook.mutate import uses_gpus
from webhook.profiles import Profile


def annotation_shared(demand: GpuDemand) -> bool:
    """Shared mode through the annotation, not through a claim."""
    return demand.shared and not demand.dra


def before_mutation(pod: Mapping[str, Any], demand: GpuDemand, profile: Profile) -> str:
    """What the profile does not allow, or an annotation-shared pod that asks the device plugin
    for a GPU too."""
    name = profile.name
    if annotation_shared(demand) and not profile.sharing.allowed:
        return (
            f"{names.GPU_SHARING_ANNOTATION}: profile {name!r} does not allow shared GPUs "
            f'(expected "false", or a {names.PROFILE_ANNOTATION} whose profile allows '
            "sharing)"
        )
    limit = profile.max_gpus
    if limit is not None and demand.gpu_count > limit:
        where, what = (
            ("spec.resourceClaims", "claims for")
            if demand.dra
            else (names.GPU_RESOURCE, "a limit of")
        )
        return (
            f"{where}: the pod asks for {demand.gpu_count} GPUs but profile "
            f"{name!r} ({names.PROFILE_ANNOTATION}) allows at most {limit} (expected {what} "
            f"at most {limit}, or a profile that allows more)"
        )
    return _device_plugin_gpus(pod) if annotation_shared(demand) else ""


def after_mutation(mutated: Mapping[str, Any], demand: GpuDemand, profile: Profile) -> str:
    """An annotation-shared pod that Headroom's scheduler would not bind."""
    if not annotation_shared(demand):
        return ""
    return _unbound_shared(mutated, profile.scheduler_name, profile.name)


def _device_plugin_gpus(pod: Mapping[str, Any]) -> str:
    """A shared pod that also asks for `nvidia.com/gpu` would get a whole GPU from the device
    plugin, chosen by the kubelet and maybe not the one Headroom recorded: refused, naming the
    first container that asks."""
    spec = pod.get("spec") or {}
    for key in ("initContainers", "containers"):
        for i, container in enumerate(spec.get(key) or []):
            if not uses_gpus(container):
                continue
            limits = container["resources"].get("limits") or {}
            kind = "limits" if names.GPU_RESOURCE in limits else "requests"
            return (
                f"spec.{key}[{i}].resources.{kind}[{names.GPU_RESOURCE}]: a pod with "
                f'{names.GPU_SHARING_ANNOTATION}: "true" gets its GPU when Headroom binds it; the '
                "device plugin would add a whole GPU of its own choosing (expected no "
                f"{names.GPU_RESOURCE}: the memory goes in {names.GPU_MEMORY_ANNOTATION})"
            )
    return ""


def _unbound_shared(mutated: Mapping[str, Any], scheduler: str | None, profile: str) -> str:
    """A shared-GPU pod gets its GPU only at Headroom's bind: the extender records the GPU it
    chose in the annotation the visible-devices variable reads. A pod Headroom's scheduler will not
    bind would start with that variable empty, on no GPU, so it is refused here."""
    spec = mutated.get("spec") or {}
    sharing = f'{names.GPU_SHARING_ANNOTATION}: "true"'
    if spec.get("nodeName"):
        return (
            f"spec.nodeName: a pod with {sharing} gets its GPU when Headroom's scheduler binds "
            f"it; one created on a node already would start with no GPU (expected no nodeName, "
            "or no sharing)"
        )
    if scheduler is None:
        return (
            f"{names.GPU_SHARING_ANNOTATION}: profile {profile!r} sets no schedulerName, so "
            "Headroom would not bind the pod and choose its GPU (expected a profile with a "
            "schedulerName, or no sharing)"
        )
    if spec.get("schedulerName") != scheduler:
        return (
            f"spec.schedulerName: a pod with {sharing} must be placed by Headroom's scheduler "
            f"{scheduler!r}, which chooses its GPU at bind (got "
            f"{spec.get('schedulerName')!r}; expected {scheduler!r} or none)"
        )
    return ""
