"""Hypothesis strategies for nodes and demands of every kind, shared by the accounting tests and
the extender's: no report, NVML unreadable, reports around the staleness limit; GPUs healthy or
not, held, shared, pending whole-GPU claims; demands shared or whole, 0..3 GPUs, DRA `All`."""

from __future__ import annotations

from hypothesis import strategies as st

from headroom.demand import GpuDemand
from headroom.fit import NodeSnapshot, PodClaim
from headroom.report import GpuPod, GpuState
from tests.headroom.builders import GI, node

STALE = 90.0


@st.composite
def snapshots(draw: st.DrawFn, name: str) -> NodeSnapshot:
    if draw(st.integers(0, 9)) == 0:
        return NodeSnapshot(name, None)
    gpus = []
    for i in range(draw(st.integers(0, 4))):
        total = draw(st.sampled_from([16, 24, 40, 80])) * GI
        used = draw(st.integers(0, total))
        pods = (GpuPod(f"{name}-g{i}", used),) if used and draw(st.booleans()) else ()
        gpus.append(
            GpuState(
                index=i,
                uuid=f"GPU-{name}-{i}",
                model="m",
                total_bytes=total,
                used_bytes=used,
                healthy=draw(st.integers(0, 4)) > 0,
                pods=pods,
                unattributed_bytes=0 if pods else used,
            )
        )
    claims = [  # pods the report shows, some known as shared ones
        PodClaim(p.uid, GpuDemand(1, p.used_bytes, shared=True), (g.uuid,))
        for g in gpus
        for p in g.pods
        if draw(st.booleans())
    ]
    if draw(st.booleans()):  # a pod bound, not in the report yet: holds a whole GPU, unnamed
        claims.append(PodClaim(f"{name}-pending", GpuDemand(draw(st.integers(1, 2)))))
    # Around the staleness limit: just inside, on it, just past, long past.
    age_seconds = draw(st.sampled_from([0.0, 1.0, STALE - 0.001, STALE, STALE + 0.001, 10**5]))
    return node(
        name,
        *gpus,
        age_seconds=age_seconds,
        claims=tuple(claims),
        healthy=draw(st.integers(0, 6)) > 0,
    )


demands = st.builds(
    GpuDemand,
    gpu_count=st.integers(0, 3),
    memory_bytes=st.integers(0, 81).map(lambda g: g * GI),
    shared=st.booleans(),
    dra=st.booleans(),
    all_gpus=st.integers(0, 4).map(lambda n: n == 0),
)
