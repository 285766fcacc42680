"""Small builders for node reports and snapshots, shared by the accounting tests."""

from headroom.fit import NodeSnapshot, PodClaim
from headroom.report import GpuPod, GpuState, NodeReport

GI = 2**30
NOW = 1_700_000_000.0


def gpu(
    index: int,
    *,
    total_gi: float = 80,
    used_gi: float = 0,
    healthy: bool = True,
    pods: tuple[GpuPod, ...] = (),
    unattributed_gi: float = 0,
    reason: str = "",
) -> GpuState:
    return GpuState(
        index=index,
        uuid=f"GPU-{index}",
        model="A100",
        total_bytes=int(total_gi * GI),
        used_bytes=int(used_gi * GI),
        healthy=healthy,
        reason=reason,
        pods=pods,
        unattributed_bytes=int(unattributed_gi * GI),
    )


def node(
    name: str,
    *gpus: GpuState,
    age_seconds: float = 1.0,
    claims: tuple[PodClaim, ...] = (),
    healthy: bool = True,
) -> NodeSnapshot:
    report = NodeReport(
        node_name=name,
        reported_at_unix_seconds=NOW - age_seconds,
        gpus=tuple(gpus),
        healthy=healthy,
        reason="" if healthy else "NVML: driver not loaded",
    )
    return NodeSnapshot(name=name, report=report, claims=claims)
