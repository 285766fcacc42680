"""A pod's GPU demand at admission when its GPUs may come from DRA ResourceClaims: pure.

The app reads the claims and templates a pod names (`webhook.claims`, the one module that talks to
the API) before the review, and hands them over as a `DraLookups` (`lookups(reads)`); the review
then asks `pod_demand`, which joins them with the pod's own limits and annotations
(`headroom.podclaims.pod_gpus`, `GpuDemand.from_pod`). What cannot be known is a denial naming
the field: a claim or template that does not exist (yet: the pod's controller retries), one that
could not be read, or any claim at all when the webhook was started without API access. A pod
without `spec.resourceClaims` asks nothing of the lookups.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from headroom.demand import DemandError, GpuDemand
from headroom.dra import DEFAULT_GPU_DRIVERS
from headroom.podclaims import DraLookups, Lookup, claim_refs, has_claims, pod_gpus
from webhook.config import IN_CLUSTER_FLAG, KUBECONFIG_FLAG

RESOURCE_CLAIM, RESOURCE_CLAIM_TEMPLATE = "ResourceClaim", "ResourceClaimTemplate"
NO_API_ACCESS = (
    f"the Headroom webhook was started without API access (neither {IN_CLUSTER_FLAG} nor "
    f"{KUBECONFIG_FLAG}), so it cannot tell which GPUs the pod's claims ask for (expected the "
    f"webhook started with one of them; ask the cluster's administrator)"
)

JsonObject = Mapping[str, Any]


class LookupFailed(Exception):
    """A claim or template that could not be read (the API unreachable, forbidden, ...)."""

    def __init__(self, kind: str, name: str, reason: str) -> None:
        self.kind, self.name, self.reason = kind, name, reason
        super().__init__(f"{kind} {name}: {reason}")


@dataclass(frozen=True)
class ClaimReads:
    """What was read of the pod's namespace: objects by name, and failures by (kind, name).
    A name in neither was not found."""

    claims: Mapping[str, JsonObject] = field(default_factory=dict)
    templates: Mapping[str, JsonObject] = field(default_factory=dict)
    failures: Mapping[tuple[str, str], str] = field(default_factory=dict)


def lookups(
    reads: ClaimReads, *, device_classes: tuple[str, ...] = DEFAULT_GPU_DRIVERS
) -> DraLookups:
    """Lookups answering from `reads`. The namespace is the pod's own: only it was read."""
    return DraLookups(
        claim=_answer(reads.claims, reads.failures, RESOURCE_CLAIM),
        template=_answer(reads.templates, reads.failures, RESOURCE_CLAIM_TEMPLATE),
        device_classes=device_classes,
    )


def without_api_access(*, device_classes: tuple[str, ...] = DEFAULT_GPU_DRIVERS) -> DraLookups:
    """Lookups for a webhook with no API access: every claim and template fails to read."""

    def refuse(kind: str) -> Lookup:
        def lookup(namespace: str, name: str) -> JsonObject | None:
            raise LookupFailed(kind, name, NO_API_ACCESS)

        return lookup

    return DraLookups(
        claim=refuse(RESOURCE_CLAIM),
        template=refuse(RESOURCE_CLAIM_TEMPLATE),
        device_classes=device_classes,
    )


def _answer(
    found: Mapping[str, JsonObject], failures: Mapping[tuple[str, str], str], kind: str
) -> Lookup:
    def lookup(namespace: str, name: str) -> JsonObject | None:
        reason = failures.get((kind, name))
        if reason is not None:
            raise LookupFailed(kind, name, reason)
        return found.get(name)

    return lookup


def pod_demand(pod: JsonObject, claims: DraLookups, *, namespace: str) -> GpuDemand | None:
    """The pod's GPU demand with what its claims ask; None for a pod that asks for no GPU.

    Raises DemandError naming the field: of a claim or template not found or not read, of a
    malformed one, or of the pod's own annotations and limits."""
    if not has_claims(pod):
        return GpuDemand.from_pod(pod)
    try:
        gpus = pod_gpus(pod, claims)
    except LookupFailed as exc:
        where = _ref_field(pod, exc.kind, exc.name)
        raise DemandError(
            where,
            f'{exc.kind} "{exc.name}" in namespace "{namespace}" could not be read: {exc.reason}',
        ) from exc
    if gpus.unknown:
        raise DemandError(*_not_found(pod, gpus.unknown[0], namespace))
    return GpuDemand.from_pod(pod, claims=gpus)


def _not_found(pod: JsonObject, ref_field: str, namespace: str) -> tuple[str, str]:
    (ref,) = [r for r in claim_refs(pod) if r.field == ref_field]
    if ref.template_name is not None:
        kind, name, key = RESOURCE_CLAIM_TEMPLATE, ref.template_name, "resourceClaimTemplateName"
    else:
        kind, name, key = RESOURCE_CLAIM, str(ref.claim_name), "resourceClaimName"
    return (
        f"{ref_field}.{key}",
        f'{kind} "{name}" not found in namespace "{namespace}" (Headroom reads it to learn the '
        "GPUs the pod asks for; expected it created before the pod: a pod's controller, such "
        "as a Deployment's ReplicaSet, retries)",
    )


def _ref_field(pod: JsonObject, kind: str, name: str) -> str:
    """The field of the pod that names `kind` `name`."""
    for ref in claim_refs(pod):
        if kind == RESOURCE_CLAIM_TEMPLATE and ref.template_name == name:
            return f"{ref.field}.resourceClaimTemplateName"
        if kind == RESOURCE_CLAIM and ref.claim_name == name:
            return f"{ref.field}.resourceClaimName"
    return "spec.resourceClaims"
