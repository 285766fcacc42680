"""The GPUNode report schema: a round trip, and errors that name the field."""

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from headroom.report import (
    REPORT_SCHEMA_VERSION,
    GpuPod,
    GpuState,
    NodeReport,
    ReportError,
    report_from_status,
    report_to_status,
    with_taints,
)

GI = 2**30


def sample_report() -> NodeReport:
    return NodeReport(
        node_name="gpu-1",
        reported_at_unix_seconds=1_700_000_000.0,
        gpus=(
            GpuState(
                index=0,
                uuid="GPU-aaa",
                model="NVIDIA A100-SXM4-80GB",
                total_bytes=80 * GI,
                used_bytes=30 * GI,
                pods=(GpuPod("uid-1", 20 * GI, "ml", "llm-0"),),
                unattributed_bytes=10 * GI,
                utilization_percent=55.0,
                temperature_celsius=61.0,
                power_watts=250.5,
                mig_enabled=False,
            ),
            GpuState(
                index=1,
                uuid="GPU-bbb",
                model="NVIDIA A100-SXM4-80GB",
                total_bytes=80 * GI,
                used_bytes=0,
                healthy=False,
                reason="GPU is lost",
            ),
        ),
    )


def test_round_trip_keeps_every_field() -> None:
    report = sample_report()
    status = report_to_status(report)
    assert status["schemaVersion"] == REPORT_SCHEMA_VERSION
    assert status["reportTime"] == "2023-11-14T22:13:20Z"
    assert report_from_status("gpu-1", status) == report


def test_summary_fields_for_printer_columns_count_healthy_gpus_only() -> None:
    status = report_to_status(sample_report())
    assert status["gpuCount"] == 2
    assert status["healthyGPUs"] == 1
    assert status["freeMemory"] == "50Gi"
    assert status["largestFree"] == "50Gi"


def test_report_knows_its_pods_and_age() -> None:
    report = sample_report()
    assert report.pod_uids == frozenset({"uid-1"})
    assert report.age_seconds(1_700_000_095.0) == 95.0
    assert report.age_seconds(1_600_000_000.0) == 0.0  # a clock behind the agent's is not negative


def mutate(path: list[Any], value: object) -> dict[str, Any]:
    status = copy.deepcopy(report_to_status(sample_report()))
    target: Any = status
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return status


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (["schemaVersion"], 2, "status.schemaVersion"),
        (["schemaVersion"], "1", "status.schemaVersion"),
        (["schemaVersion"], KeyError, "status.schemaVersion"),
        (["reportTime"], "yesterday", "status.reportTime"),
        (["reportTime"], "2024-01-01T00:00:00", "status.reportTime"),
        (["gpus"], {}, "status.gpus"),
        (["gpus", 0, "totalBytes"], -1, "status.gpus[0].totalBytes"),
        (["gpus", 0, "totalBytes"], "80Gi", "status.gpus[0].totalBytes"),
        (["gpus", 1, "uuid"], KeyError, "status.gpus[1].uuid"),
        (["gpus", 0, "healthy"], "yes", "status.gpus[0].healthy"),
        (["gpus", 0, "pods", 0, "usedBytes"], 1.5, "status.gpus[0].pods[0].usedBytes"),
        (["gpus", 0, "utilizationPercent"], "high", "status.gpus[0].utilizationPercent"),
        (["gpus", 0], "gpu", "status.gpus[0]"),
    ],
)
def test_bad_fields_are_named(path: list[Any], value: object, field: str) -> None:
    with pytest.raises(ReportError) as info:
        report_from_status("gpu-1", mutate(path, value))
    assert str(info.value).startswith(f"{field}: ")


@given(st.lists(st.tuples(st.integers(0, 2**40), st.integers(0, 2**40), st.booleans()), max_size=8))
def test_round_trip_property(gpus: list[tuple[int, int, bool]]) -> None:
    report = NodeReport(
        node_name="n",
        reported_at_unix_seconds=1_700_000_000.0,
        gpus=tuple(
            GpuState(index=i, uuid=f"GPU-{i}", model="m", total_bytes=t, used_bytes=u, healthy=h)
            for i, (t, u, h) in enumerate(gpus)
        ),
    )
    assert report_from_status("n", report_to_status(report)) == report


def test_a_device_taint_counts_its_gpu_unhealthy_and_says_which_taint() -> None:
    report = NodeReport(
        node_name="n",
        reported_at_unix_seconds=0,
        gpus=(
            GpuState(0, "GPU-0", "A100", 80 * GI, 0),
            GpuState(1, "GPU-1", "A100", 80 * GI, 0),
            GpuState(2, "GPU-2", "A100", 80 * GI, 0, healthy=False, reason="XID 79"),
        ),
    )
    tainted = with_taints(
        report, {"GPU-1": "drain=now:NoSchedule", "GPU-2": "x=:NoExecute", "GPU-9": "y=:NoSchedule"}
    )
    assert [(g.healthy, g.reason) for g in tainted.gpus] == [
        (True, ""),
        (False, "device taint drain=now:NoSchedule"),
        (False, "XID 79"),  # a fault already named keeps its reason
    ]
    assert tainted.node_name == "n" and report.gpus[1].healthy  # the original is unchanged
    assert with_taints(report, {"GPU-9": "y=:NoSchedule"}) is report
    assert with_taints(report, {}) is report
