"""Readings -> NodeReport (attribution, health, what is kept when a GPU fails) and the decision
when a report is worth writing, as pure functions; XID holds."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from headroom.report import GpuPod, GpuState, NodeReport, report_from_status, report_to_status
from nodeagent.readings import DeviceReading, ProcessReading
from nodeagent.report import (
    attribute,
    build_report,
    gpu_state,
    publish_reason,
    unavailable_report,
)
from nodeagent.xid import CRITICAL_XIDS, XidHolds

GIB, MIB = 2**30, 2**20
NOW = 1_700_000_000.0
PODS = {101: "uid-a", 102: "uid-a", 103: "uid-b"}


def pod_of(pid: int) -> str | None:
    return PODS.get(pid)


def reading(index: int = 0, **changes: object) -> DeviceReading:
    base = DeviceReading(
        index=index,
        uuid=f"GPU-{index}",
        model="NVIDIA L4",
        total_bytes=24 * GIB,
        used_bytes=10 * GIB,
        utilization_percent=50.0,
        memory_utilization_percent=10.0,
        temperature_celsius=60.0,
        power_watts=70.0,
        mig_enabled=False,
        processes=(),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_attribution_sums_per_pod_and_keeps_the_rest_unattributed() -> None:
    processes = [
        ProcessReading(101, 3 * GIB),
        ProcessReading(102, GIB),
        ProcessReading(103, None),
        ProcessReading(999, 2 * GIB),
    ]
    pods, unattributed = attribute(processes, used_bytes=10 * GIB, pod_of=pod_of)
    assert pods == (GpuPod("uid-a", 4 * GIB), GpuPod("uid-b", 0))
    # the process outside pods (2Gi) and what no process accounts for (10 - 6 = 4Gi)
    assert unattributed == 6 * GIB


def test_unattributed_is_clamped_at_zero() -> None:
    _, unattributed = attribute([ProcessReading(101, 12 * GIB)], used_bytes=10 * GIB, pod_of=pod_of)
    assert unattributed == 0


@given(
    st.lists(
        st.tuples(st.sampled_from([101, 102, 103, 500, 501]), st.none() | st.integers(0, 80 * GIB)),
        max_size=20,
    ),
    st.integers(0, 80 * GIB),
)
def test_attribution_accounts_for_all_used_memory(
    procs: list[tuple[int, int | None]], used: int
) -> None:
    pods, unattributed = attribute(
        [ProcessReading(p, n) for p, n in procs], used_bytes=used, pod_of=pod_of
    )
    in_pods = sum(p.used_bytes for p in pods)
    assert unattributed == max(0, used - in_pods)
    assert [p.uid for p in pods] == sorted({PODS[p] for p, _ in procs if p in PODS})


def test_a_good_reading_becomes_a_healthy_gpu() -> None:
    gpu = gpu_state(
        reading(processes=(ProcessReading(101, 4 * GIB),)),
        pod_of=pod_of,
        hold_reason=None,
        known=None,
    )
    assert gpu == GpuState(
        index=0,
        uuid="GPU-0",
        model="NVIDIA L4",
        total_bytes=24 * GIB,
        used_bytes=10 * GIB,
        pods=(GpuPod("uid-a", 4 * GIB),),
        unattributed_bytes=6 * GIB,
        utilization_percent=50.0,
        memory_utilization_percent=10.0,
        temperature_celsius=60.0,
        power_watts=70.0,
        mig_enabled=False,
    )


def test_unknown_processes_leave_all_memory_unattributed() -> None:
    gpu = gpu_state(reading(processes=None), pod_of=pod_of, hold_reason=None, known=None)
    assert (gpu.pods, gpu.unattributed_bytes, gpu.healthy) == ((), 10 * GIB, True)


def test_a_failed_gpu_keeps_its_last_known_identity() -> None:
    known = gpu_state(reading(), pod_of=pod_of, hold_reason=None, known=None)
    lost = DeviceReading(index=0, error="GPU is lost (nvmlDeviceGetHandleByIndex)")
    gpu = gpu_state(lost, pod_of=pod_of, hold_reason=None, known=known)
    assert (gpu.uuid, gpu.model, gpu.total_bytes, gpu.used_bytes) == (
        "GPU-0",
        "NVIDIA L4",
        24 * GIB,
        10 * GIB,
    )
    assert (gpu.healthy, gpu.reason) == (False, "GPU is lost (nvmlDeviceGetHandleByIndex)")
    never_seen = gpu_state(lost, pod_of=pod_of, hold_reason=None, known=None)
    assert (never_seen.uuid, never_seen.total_bytes) == ("unknown-gpu-0", 0)


def test_out_of_range_values_are_dropped_not_written() -> None:
    gpu = gpu_state(
        reading(
            utilization_percent=250.0,
            memory_utilization_percent=-1.0,
            power_watts=-3.0,
            temperature_celsius=float("nan"),
        ),
        pod_of=pod_of,
        hold_reason=None,
        known=None,
    )
    assert (
        gpu.utilization_percent,
        gpu.memory_utilization_percent,
        gpu.power_watts,
        gpu.temperature_celsius,
    ) == (None, None, None, None)


def test_a_held_xid_makes_the_gpu_unhealthy_until_the_hold_ends() -> None:
    holds = XidHolds(hold_seconds=300)
    assert holds.record("GPU-1", 79, now_unix_seconds=NOW)
    assert not holds.record("GPU-0", 13, now_unix_seconds=NOW)  # an application's own fault
    report = build_report(
        "n1",
        [reading(0), reading(1)],
        now_unix_seconds=NOW + 10,
        pod_of=pod_of,
        holds=holds,
        known={},
    )
    assert [g.healthy for g in report.gpus] == [True, False]
    assert report.gpus[1].reason == (
        "critical XID 79 (GPU has fallen off the bus) at "
        "2023-11-14T22:13:20Z; unhealthy until 2023-11-14T22:18:20Z"
    )
    later = build_report(
        "n1",
        [reading(0), reading(1)],
        now_unix_seconds=NOW + 300,
        pod_of=pod_of,
        holds=holds,
        known={},
    )
    assert [g.healthy for g in later.gpus] == [True, True]


def test_a_later_xid_extends_the_hold_and_zero_hold_ignores_xids() -> None:
    holds = XidHolds(hold_seconds=100)
    holds.record("GPU-0", 48, now_unix_seconds=NOW)
    holds.record("GPU-0", 95, now_unix_seconds=NOW + 50)
    assert "XID 95" in (holds.reason("GPU-0", now_unix_seconds=NOW + 120) or "")
    assert holds.reason("GPU-0", now_unix_seconds=NOW + 150) is None
    off = XidHolds(hold_seconds=0)
    assert not off.record("GPU-0", 79, now_unix_seconds=NOW)
    assert off.reason("GPU-0", now_unix_seconds=NOW) is None


def test_the_critical_list_leaves_application_xids_out() -> None:
    assert {13, 31, 43, 45, 68}.isdisjoint(CRITICAL_XIDS)
    assert {48, 63, 64, 74, 79, 92, 94, 95} <= set(CRITICAL_XIDS)


def test_nvml_unavailable_lists_the_last_known_gpus_unhealthy() -> None:
    known = {
        i: gpu_state(
            reading(i, processes=(ProcessReading(101, GIB),)),
            pod_of=pod_of,
            hold_reason=None,
            known=None,
        )
        for i in (1, 0)
    }
    report = unavailable_report("n1", "NVIDIA driver not loaded", now_unix_seconds=NOW, known=known)
    assert (report.healthy, report.reason) == (False, "NVIDIA driver not loaded")
    assert [
        (g.index, g.uuid, g.healthy, g.reason, g.pods, g.utilization_percent) for g in report.gpus
    ] == [
        (0, "GPU-0", False, "NVIDIA driver not loaded", (), None),
        (1, "GPU-1", False, "NVIDIA driver not loaded", (), None),
    ]
    assert unavailable_report("n1", "x", now_unix_seconds=NOW, known={}).gpus == ()


def test_reports_fit_the_status_schema() -> None:
    report = build_report(
        "n1",
        [
            reading(0, processes=(ProcessReading(101, GIB),)),
            DeviceReading(index=1, error="GPU is lost"),
        ],
        now_unix_seconds=NOW,
        pod_of=pod_of,
        holds=XidHolds(),
        known={},
    )
    assert report_from_status("n1", report_to_status(report)) == report


# -- when to write ------------------------------------------------------------------------------
def node(*gpus: GpuState, at: float = NOW, healthy: bool = True, reason: str = "") -> NodeReport:
    return NodeReport(
        node_name="n1", reported_at_unix_seconds=at, gpus=gpus, healthy=healthy, reason=reason
    )


BASE = GpuState(
    index=0,
    uuid="GPU-0",
    model="L4",
    total_bytes=24 * GIB,
    used_bytes=10 * GIB,
    pods=(GpuPod("uid-a", 4 * GIB),),
    unattributed_bytes=6 * GIB,
    utilization_percent=50.0,
)


def decide(last: NodeReport | None, new: NodeReport) -> str | None:
    return publish_reason(
        last, new, deadband_bytes=256 * MIB, heartbeat_seconds=30, interval_seconds=5
    )


@pytest.mark.parametrize(
    ("new", "expected"),
    [
        (node(BASE, at=NOW + 5), None),
        (node(replace(BASE, utilization_percent=99.0), at=NOW + 5), None),  # not material
        (node(replace(BASE, used_bytes=10 * GIB + 256 * MIB), at=NOW + 5), None),  # within deadband
        (
            node(replace(BASE, used_bytes=10 * GIB + 257 * MIB), at=NOW + 5),
            "GPU 0: used memory changed by 257Mi",
        ),
        (node(replace(BASE, used_bytes=9 * GIB), at=NOW + 5), "GPU 0: used memory changed by -1Gi"),
        (
            node(replace(BASE, unattributed_bytes=7 * GIB), at=NOW + 5),
            "GPU 0: unattributed memory changed by 1Gi",
        ),
        (
            node(replace(BASE, pods=(GpuPod("uid-a", 5 * GIB),)), at=NOW + 5),
            "GPU 0: pod uid-a changed by 1Gi",
        ),
        (
            node(replace(BASE, pods=(GpuPod("uid-b", 4 * GIB),)), at=NOW + 5),
            "GPU 0: the set of pods changed",
        ),
        (
            node(replace(BASE, healthy=False, reason="GPU is lost"), at=NOW + 5),
            "GPU 0: health changed",
        ),
        (
            node(replace(BASE, mig_enabled=True), at=NOW + 5),
            "GPU 0: total memory or MIG mode changed",
        ),
        (node(BASE, replace(BASE, index=1, uuid="GPU-1"), at=NOW + 5), "the set of GPUs changed"),
        (node(BASE, at=NOW + 5, healthy=False, reason="driver"), "node health changed"),
        (node(BASE, at=NOW + 25), None),
        (node(BASE, at=NOW + 27.5), "heartbeat"),  # the sample nearest the heartbeat
        (node(BASE, at=NOW + 30), "heartbeat"),
    ],
    ids=lambda v: v if isinstance(v, str | type(None)) else "",
)
def test_publish_reason(new: NodeReport, expected: str | None) -> None:
    assert decide(node(BASE), new) == expected


def test_the_first_report_is_always_written() -> None:
    assert decide(None, node(BASE)) == "first report"


@given(st.lists(st.integers(-100 * MIB, 100 * MIB), min_size=1, max_size=30))
def test_drift_is_written_once_it_adds_up(steps: list[int]) -> None:
    # Compared with the last *written* report, small steps cannot hide a large total change.
    last = node(BASE)
    used = BASE.used_bytes
    for step in steps:
        used = max(0, used + step)
        new = node(
            replace(BASE, used_bytes=used, unattributed_bytes=BASE.unattributed_bytes), at=NOW + 1
        )
        if decide(last, new) is not None:
            last = new
        assert abs(last.gpus[0].used_bytes - used) <= 256 * MIB
