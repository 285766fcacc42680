"""The GPUNode status summaries behind `kubectl get gpunodes`: what they count, and that the
report reader ignores them (they are derived from `gpus`, not part of the report)."""

from hypothesis import given
from hypothesis import strategies as st

from headroom.report import GpuPod, GpuState, NodeReport, report_from_status, report_to_status

GI = 2**30
SUMMARY_KEYS = ("gpuCount", "healthyGPUs", "freeMemory", "largestFree", "unclaimedGPUs")


def gpu(
    index: int, *, used_gi: int = 0, healthy: bool = True, pods: int = 0, unattributed_gi: int = 0
) -> GpuState:
    return GpuState(
        index=index,
        uuid=f"GPU-{index}",
        model="NVIDIA L4",
        total_bytes=24 * GI,
        used_bytes=used_gi * GI,
        healthy=healthy,
        reason="" if healthy else "GPU is lost",
        pods=tuple(GpuPod(f"uid-{index}-{i}", GI) for i in range(pods)),
        unattributed_bytes=unattributed_gi * GI,
    )


def test_unclaimed_counts_healthy_gpus_that_no_pod_uses() -> None:
    report = NodeReport(
        node_name="n",
        reported_at_unix_seconds=1.0,
        gpus=(
            gpu(0, used_gi=4, pods=1),  # a pod's: taken for a whole-GPU pod
            gpu(1, used_gi=6, unattributed_gi=6),  # memory used outside pods: still unclaimed
            gpu(2),  # empty
            gpu(3, healthy=False),  # lost: counts for nothing
        ),
    )
    status = report_to_status(report)
    assert status["unclaimedGPUs"] == 2
    assert (status["gpuCount"], status["healthyGPUs"]) == (4, 3)
    # Free memory counts the pod's GPU too (a shared pod could use it): 20 + 18 + 24.
    assert (status["freeMemory"], status["largestFree"]) == ("62Gi", "24Gi")


def test_a_node_without_gpus_or_an_unreadable_one_has_no_headroom() -> None:
    empty = report_to_status(NodeReport(node_name="n", reported_at_unix_seconds=1.0))
    assert [empty[k] for k in SUMMARY_KEYS] == [0, 0, "0", "0", 0]
    unreadable = report_to_status(
        NodeReport(
            node_name="n",
            reported_at_unix_seconds=1.0,
            healthy=False,
            reason="NVML: driver not loaded",
            gpus=(gpu(0, healthy=False), gpu(1, healthy=False)),
        )
    )
    assert [unreadable[k] for k in SUMMARY_KEYS] == [2, 0, "0", "0", 0]


gpus = st.lists(
    st.builds(
        lambda used, healthy, pods: (used, healthy, pods),
        st.integers(0, 24),
        st.booleans(),
        st.integers(0, 3),
    ),
    max_size=8,
).map(
    lambda specs: tuple(gpu(i, used_gi=u, healthy=h, pods=p) for i, (u, h, p) in enumerate(specs))
)


@given(gpus)
def test_summaries_are_consistent_and_ignored_by_the_reader(
    gpu_states: tuple[GpuState, ...],
) -> None:
    report = NodeReport(node_name="n", reported_at_unix_seconds=1_700_000_000.0, gpus=gpu_states)
    status = report_to_status(report)
    assert 0 <= status["unclaimedGPUs"] <= status["healthyGPUs"] <= status["gpuCount"]
    assert status["unclaimedGPUs"] == sum(1 for g in gpu_states if g.healthy and not g.pods)
    without = {k: v for k, v in status.items() if k not in SUMMARY_KEYS}
    garbled = {**status, "gpuCount": 99, "unclaimedGPUs": "many", "freeMemory": []}
    assert report_from_status("n", without) == report
    assert report_from_status("n", garbled) == report
