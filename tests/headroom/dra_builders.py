"""ResourceClaims and lookups as the API and the watch caches give them, for the DRA tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from headroom.dra import device_index
from headroom.podclaims import DraLookups
from tooling.dra import GIB, claim_template, resource_slice

DEVICES = device_index(
    [
        resource_slice("node-a", [("GPU-a0", 80 * GIB), ("GPU-a1", 80 * GIB)]),
        resource_slice("node-b", [("GPU-b0", 40 * GIB)]),
    ]
)


def claim(
    name: str,
    *,
    count: int = 1,
    memory: int | None = None,
    devices: list[tuple[str, str]] | None = None,
    driver: str = "gpu.nvidia.com",
    reserved_for: list[str] | None = None,
    uid: str = "",
) -> dict[str, Any]:
    """A ResourceClaim asking `count` GPUs, allocated to `devices` ((pool, device)) if given."""
    obj: dict[str, Any] = {
        "metadata": {"name": name, "namespace": "ml", "uid": uid or f"uid-{name}"},
        "spec": claim_template(name, count=count, memory=memory)["spec"]["spec"],
    }
    if devices is not None:
        results = [
            {"request": "gpu", "driver": driver, "pool": pool, "device": device}
            for pool, device in devices
        ]
        obj["status"] = {"allocation": {"devices": {"results": results}}}
    if reserved_for is not None:
        obj.setdefault("status", {})["reservedFor"] = [
            {"resource": "pods", "name": reserved, "uid": reserved} for reserved in reserved_for
        ]
    return obj


def lookups(
    claims: Sequence[Mapping[str, Any]] = (),
    templates: Sequence[Mapping[str, Any]] = (),
    *,
    namespace: str = "ml",
) -> DraLookups:
    by_name = {(namespace, c["metadata"]["name"]): c for c in claims}
    by_template = {(namespace, t["metadata"]["name"]): t for t in templates}
    return DraLookups(
        claim=lambda ns, name: by_name.get((ns, name)),
        template=lambda ns, name: by_template.get((ns, name)),
        devices=DEVICES,
    )


def dra_pod(
    uid: str, *claim_names: str, node_name: str = "", phase: str = "Pending", gpus: int = 0
) -> dict[str, Any]:
    """A pod in namespace `ml` using the named ResourceClaims (and `gpus` device-plugin GPUs)."""
    limits = {"nvidia.com/gpu": str(gpus)} if gpus else {}
    return {
        "metadata": {"name": uid, "namespace": "ml", "uid": uid},
        "spec": {
            "nodeName": node_name or None,
            "resourceClaims": [
                {"name": f"c{i}", "resourceClaimName": name} for i, name in enumerate(claim_names)
            ],
            "containers": [{"name": "c", "resources": {"limits": limits}}],
        },
        "status": {"phase": phase},
    }
