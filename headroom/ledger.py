"""Which pods claim which GPUs on a node, and what that leaves: the pod -> claim accounting.

The extender's cluster view and `headroom status` both turn pods into claims and claims into
per-GPU used / reserved / free; this module is the one place that does, so the CLI shows what the
extender decides by. Pods are JSON objects (as the API and the watch caches give them); the GPU
accounts come from `headroom.fit.ledger`. Pure: no client imports.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from headroom.demand import DemandError, GpuDemand, assigned_gpus
from headroom.dra import AllocatedGpu, allocated_gpus, requested_gpus, reserved_pods
from headroom.fields import FieldError, read_optional_mapping
from headroom.fit import NodeSnapshot, PodClaim, ledger
from headroom.podclaims import NO_GPUS, NO_LOOKUPS, DraLookups, has_claims, pod_gpus
from headroom.report import GpuState

TERMINAL_PHASES = ("Succeeded", "Failed")  # a pod in these holds no GPU any more

# Told (pod uid, the error) when a pod's GPU request cannot be read and it is counted as one GPU.
UnreadableDemand = Callable[[str, DemandError], None]


def pod_uid(pod: Mapping[str, Any]) -> str:
    return str((pod.get("metadata") or {}).get("uid", ""))


def bound_node(pod: Mapping[str, Any]) -> str:
    """The node the pod is bound to, or "" while it is not."""
    return str((pod.get("spec") or {}).get("nodeName") or "")


def claim_of(
    pod: Mapping[str, Any],
    *,
    dra: DraLookups = NO_LOOKUPS,
    on_unreadable: UnreadableDemand | None = None,
) -> PodClaim | None:
    """The GPUs a pod holds (or will), or None for a pod without GPUs or one that has finished.
    Its ResourceClaims are found through `dra`; the GPUs allocated to them are its GPUs."""
    if (pod.get("status") or {}).get("phase") in TERMINAL_PHASES:
        return None
    uid = pod_uid(pod)
    claims = NO_GPUS
    try:
        claims = pod_gpus(pod, dra) if has_claims(pod) else NO_GPUS
        demand = GpuDemand.from_pod(pod, claims=claims)
    except FieldError as exc:
        # The webhook refuses such pods; one that got in anyway (unmanaged, or created before the
        # webhook) is counted as holding one whole GPU rather than nothing.
        if on_unreadable is not None:
            on_unreadable(
                uid, exc if isinstance(exc, DemandError) else DemandError(exc.field, exc.message)
            )
        demand = GpuDemand(gpu_count=1)
    if demand is None:
        return None
    return PodClaim(uid, demand, assigned_gpus(pod) or claims.gpu_uuids)


def claims_by_node(
    pods: Iterable[Mapping[str, Any]],
    *,
    dra: DraLookups = NO_LOOKUPS,
    on_unreadable: UnreadableDemand | None = None,
) -> dict[str, list[PodClaim]]:
    """The claims of the pods bound to a node, per node name."""
    claims: dict[str, list[PodClaim]] = {}
    for pod in pods:
        node = bound_node(pod)
        claim = claim_of(pod, dra=dra, on_unreadable=on_unreadable) if node else None
        if claim is not None:
            claims.setdefault(node, []).append(claim)
    return claims


def allocation_claims(
    claims: Iterable[Mapping[str, Any]],
    *,
    bound_pods: Callable[[str], bool],
    dra: DraLookups,
) -> dict[str, list[PodClaim]]:
    """GPUs that allocated ResourceClaims hold for pods not bound yet, per node.

    The scheduler writes a claim's allocation (PreBind) before it binds the pod, and another
    scheduler may allocate claims Headroom never binds: from that moment the GPU is taken, even
    though no bound pod says so. A claim whose reserved pod is bound is left out (the pod's own
    claim counts it); the entry is keyed by the reserved pod's UID, so it gives way to that pod's
    claim the moment the pod is bound. `bound_pods(uid)` says whether a pod is bound."""
    held: dict[str, list[PodClaim]] = {}
    for claim in claims:
        try:
            gpus = allocated_gpus(claim, dra.devices, gpu_drivers=dra.drivers)
            ask = requested_gpus(
                read_optional_mapping(claim.get("spec"), "spec"),
                device_classes=dra.device_classes,
            )
        except FieldError:
            continue
        reserved = reserved_pods(claim)
        if not gpus or any(bound_pods(uid) for uid in reserved):
            continue
        key = reserved[0] if reserved else f"claim:{pod_uid(claim)}"
        on_node: dict[str, list[AllocatedGpu]] = {}
        for gpu in gpus:
            on_node.setdefault(gpu.device.node_name, []).append(gpu)
        for node, here in on_node.items():  # each node counts the claim's GPUs on it, no others
            demand = GpuDemand(
                gpu_count=len(here), memory_bytes=ask.memory_bytes, shared=ask.shared, dra=True
            )
            uuids = tuple(g.device.uuid for g in here if g.device.uuid)
            held.setdefault(node, []).append(PodClaim(key, demand, uuids))
    return held


def with_allocations(
    own: Mapping[str, list[PodClaim]], allocations: Mapping[str, list[PodClaim]]
) -> dict[str, list[PodClaim]]:
    """Per node, the bound pods' claims (`claims_by_node`) and the GPUs allocations hold for pods
    not bound yet (`allocation_claims`). A pod's own claim wins over an allocation entry with its
    UID, so no pod is counted twice."""
    uids = {c.uid for claims in own.values() for c in claims}
    merged = {node: list(claims) for node, claims in own.items()}
    for node, claims in allocations.items():
        for claim in claims:
            if claim.uid not in uids:
                merged.setdefault(node, []).append(claim)
    return merged


@dataclass(frozen=True)
class GpuAccount:
    """One GPU as a person reads it: what the agent saw used, what bound pods the report does
    not show yet reserve on top, and what is left. A GPU an exclusive pod holds (a device-plugin
    pod, or a claim on the whole device) has nothing left: the rest of it is reserved."""

    gpu: GpuState
    used_bytes: int
    reserved_bytes: int
    free_bytes: int


def gpu_accounts(snapshot: NodeSnapshot) -> list[GpuAccount]:
    """Per GPU of the node's report, used / reserved / free by the extender's accounting."""
    books, _ = ledger(snapshot)
    accounts = []
    for book in books:
        used, total = book.gpu.used_bytes, book.gpu.total_bytes
        committed = total if book.held_whole else book.committed_bytes
        accounts.append(
            GpuAccount(book.gpu, used, max(0, committed - used), max(0, total - committed))
        )
    return accounts
