"""A pod's GPUs through DRA: which ResourceClaims it uses, what they ask, and what they were given.

A pod names its claims in `spec.resourceClaims`: a ResourceClaim by name, or a
ResourceClaimTemplate from which the claim controller makes one (its name is then in
`status.resourceClaimStatuses`). Before that claim exists the template's spec says what it will
ask; once allocated, the claim names its devices, and the ResourceSlices their GPU UUIDs.

The objects come through `DraLookups` (the extender's watch caches, the CLI's lists, the webhook's
reads), so this stays pure. `DraLookups.NONE` knows no claim: a pod then asks nothing through DRA.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from headroom import dra, fields

Lookup = Callable[[str, str], Mapping[str, Any] | None]  # (namespace, name) -> object or None


def _nothing(namespace: str, name: str) -> Mapping[str, Any] | None:
    return None


@dataclass(frozen=True)
class DraLookups:
    """Where claims, templates and published devices are found, and which of them are GPUs."""

    claim: Lookup = _nothing
    template: Lookup = _nothing
    devices: Mapping[dra.DeviceKey, dra.SliceDevice] = field(default_factory=dict)
    device_classes: tuple[str, ...] = dra.DEFAULT_GPU_DRIVERS  # whose requests are GPU requests
    drivers: tuple[str, ...] = dra.DEFAULT_GPU_DRIVERS  # whose allocated devices are GPUs


NO_LOOKUPS = DraLookups()


@dataclass(frozen=True)
class ClaimRef:
    """One entry of `spec.resourceClaims`."""

    field: str  # where it is, for messages: spec.resourceClaims[0]
    claim_name: str | None  # the ResourceClaim, when known (named, or made from the template)
    template_name: str | None


@dataclass(frozen=True)
class PodGpus:
    """What a pod's claims ask of GPU device classes and which GPUs they hold so far."""

    ask: dra.GpuAsk = field(default_factory=dra.GpuAsk)
    gpu_uuids: tuple[str, ...] = ()  # GPUs allocated to its claims, by UUID
    nodes: tuple[str, ...] = ()  # the nodes of those GPUs
    pending: int = 0  # GPU-asking claims not allocated yet
    unknown: tuple[str, ...] = ()  # refs whose claim and template are both unknown (fields)

    @property
    def allocated(self) -> bool:
        """Every GPU-asking claim is allocated: the GPUs are chosen."""
        return self.ask.any and self.pending == 0


NO_GPUS = PodGpus()


def has_claims(pod: Mapping[str, Any]) -> bool:
    spec = pod.get("spec")
    return isinstance(spec, Mapping) and bool(spec.get("resourceClaims"))


def claim_refs(pod: Mapping[str, Any]) -> list[ClaimRef]:
    """The pod's claim references, with the generated claim names from its status."""
    spec = fields.read_optional_mapping(pod.get("spec"), "spec")
    entries = fields.read_optional_list(spec.get("resourceClaims"), "spec.resourceClaims")
    status = pod.get("status")
    statuses = status.get("resourceClaimStatuses") if isinstance(status, Mapping) else None
    generated = {
        s.get("name"): s.get("resourceClaimName")
        for s in statuses or []
        if isinstance(s, Mapping) and isinstance(s.get("resourceClaimName"), str)
    }
    refs = []
    for position, raw in enumerate(entries):
        where = f"spec.resourceClaims[{position}]"
        entry = fields.read_mapping(raw, where)
        name = fields.read_str(entry.get("name"), f"{where}.name", nonempty=True)
        claim = fields.read_optional_str(
            entry.get("resourceClaimName"), f"{where}.resourceClaimName"
        )
        template = fields.read_optional_str(
            entry.get("resourceClaimTemplateName"), f"{where}.resourceClaimTemplateName"
        )
        if claim is None and template is None:
            fields.fail(entry, where, expected="resourceClaimName or resourceClaimTemplateName set")
        refs.append(ClaimRef(where, claim or generated.get(name), template))
    return refs


def pod_gpus(pod: Mapping[str, Any], lookups: DraLookups) -> PodGpus:
    """What the pod's claims ask of GPUs and hold. A claim that exists speaks for itself; before
    it exists its template does. Raises FieldError naming the field of a malformed pod, claim or
    template."""
    if not has_claims(pod):
        return NO_GPUS
    namespace = str((pod.get("metadata") or {}).get("namespace") or "")
    ask, uuids, nodes, pending, unknown = dra.GpuAsk(), [], [], 0, []
    for ref in claim_refs(pod):
        claim = lookups.claim(namespace, ref.claim_name) if ref.claim_name else None
        if claim is not None:
            claim_ask, held = _claim(claim, lookups, where=f"ResourceClaim {ref.claim_name}")
            uuids += [g.device.uuid for g in held if g.device.uuid]
            nodes += [g.device.node_name for g in held if g.device.node_name]
            pending += claim_ask.any and not held
        elif ref.template_name is not None and (
            template := lookups.template(namespace, ref.template_name)
        ):
            claim_ask = _template(
                template, lookups, where=f"ResourceClaimTemplate {ref.template_name}"
            )
            pending += claim_ask.any
        else:
            unknown.append(ref.field)
            continue
        ask = ask.plus(claim_ask)
    return PodGpus(ask, tuple(uuids), tuple(dict.fromkeys(nodes)), pending, tuple(unknown))


def _claim(
    claim: Mapping[str, Any], lookups: DraLookups, *, where: str
) -> tuple[dra.GpuAsk, list[dra.AllocatedGpu]]:
    """What a ResourceClaim asks and holds; a FieldError names the claim and its field."""
    try:
        spec = fields.read_optional_mapping(claim.get("spec"), "spec")
        held = dra.allocated_gpus(claim, lookups.devices, gpu_drivers=lookups.drivers)
        return dra.requested_gpus(spec, device_classes=lookups.device_classes), held
    except fields.FieldError as exc:
        raise fields.FieldError(f"{where}: {exc.field}", exc.message) from exc


def _template(template: Mapping[str, Any], lookups: DraLookups, *, where: str) -> dra.GpuAsk:
    """What a claim made from the template will ask. Its claim spec is at `spec.spec`, so the
    field a FieldError names (`spec.devices...` of the claim spec) is given that prefix."""
    try:
        outer = fields.read_optional_mapping(template.get("spec"), "spec")
        inner = fields.read_optional_mapping(outer.get("spec"), "spec.spec")
    except fields.FieldError as exc:
        raise fields.FieldError(f"{where}: {exc.field}", exc.message) from exc
    try:
        return dra.requested_gpus(inner, device_classes=lookups.device_classes)
    except fields.FieldError as exc:
        raise fields.FieldError(f"{where}: spec.{exc.field}", exc.message) from exc
