"""Objects as the API server serves them, for driving the extender's view and verbs."""

from __future__ import annotations

from typing import Any

from headroom import names
from headroom.report import GpuPod, GpuState, NodeReport, report_to_status

GI = 2**30
NOW = 1_700_000_000.0


def gpunode(
    name: str,
    totals_gi: list[float],
    *,
    used_gi: float = 0,
    age_seconds: float = 1,
    pods: dict[int, list[tuple[str, float]]] | None = None,
) -> dict[str, Any]:
    def on_gpu(i: int) -> tuple[GpuPod, ...]:
        return tuple(GpuPod(uid, int(b * GI)) for uid, b in (pods or {}).get(i, []))

    gpus = tuple(
        GpuState(
            index=i,
            uuid=f"GPU-{name}-{i}",
            model="m",
            total_bytes=int(t * GI),
            used_bytes=int(used_gi * GI) + sum(p.used_bytes for p in on_gpu(i)),
            unattributed_bytes=int(used_gi * GI),
            pods=on_gpu(i),
        )
        for i, t in enumerate(totals_gi)
    )
    report = NodeReport(node_name=name, reported_at_unix_seconds=NOW - age_seconds, gpus=gpus)
    return {"metadata": {"name": name}, "status": report_to_status(report)}


def node(name: str, *, unschedulable: bool = False) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"unschedulable": unschedulable}}


def pod(
    uid: str,
    *,
    memory: str | None = "20Gi",
    shared: bool = True,
    node_name: str = "",
    gpus: int | None = None,
    assigned: str = "",
    phase: str = "Pending",
    policy: str | None = None,
) -> dict[str, Any]:
    annotations: dict[str, str] = {}
    if memory is not None:
        annotations[names.GPU_MEMORY_ANNOTATION] = memory
    if shared:
        annotations[names.GPU_SHARING_ANNOTATION] = "true"
    if assigned:
        annotations[names.ASSIGNED_GPUS_ANNOTATION] = assigned
    if policy:
        annotations[names.PLACEMENT_POLICY_ANNOTATION] = policy
    limits = {} if gpus is None else {names.GPU_RESOURCE: str(gpus)}
    return {
        "metadata": {"name": uid, "namespace": "ml", "uid": uid, "annotations": annotations},
        "spec": {
            "nodeName": node_name or None,
            "schedulerName": names.SCHEDULER_NAME,
            "containers": [{"name": "c", "resources": {"limits": limits}}],
        },
        "status": {"phase": phase},
    }
