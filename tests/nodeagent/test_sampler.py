"""The sampler with the real pynvml on the fake library: attribution through a proc root, a GPU
lost mid-run, critical XIDs held, and NVML unusable (at start or later) reported and retried."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from headroom.report import GpuPod
from nodeagent.agent import Sampler
from nodeagent.cgroups import PodLocator
from nodeagent.nvml import Nvml
from nodeagent.xid import XidHolds
from tooling.fakenvml import GIB, FakeDevice, FakeNvml, device, pod_cgroup, write_proc

POD_A = "0a1b2c3d-0000-4000-8000-00000000000a"
POD_B = "0a1b2c3d-0000-4000-8000-00000000000b"
NOW = 1_700_000_000.0


class Clock:
    def __init__(self) -> None:
        self.wall = NOW
        self.mono = 1000.0

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sampler(fake: FakeNvml, nvml: Nvml, tmp_path: Path, clock: Clock) -> Sampler:
    proc = tmp_path / "proc"
    write_proc(proc, 10, pod_cgroup(POD_A))
    write_proc(proc, 11, pod_cgroup(POD_A, "cd" * 32))
    write_proc(proc, 12, pod_cgroup(POD_B))
    write_proc(proc, 13, "0::/system.slice/persistenced.service\n")
    return Sampler(
        "gpu-node-1",
        nvml=nvml,
        locator=PodLocator(proc),
        holds=XidHolds(hold_seconds=300),
        clock=lambda: clock.wall,
        monotonic=lambda: clock.mono,
    )


def two_gpus() -> list[FakeDevice]:
    return [
        device(
            0,
            used=9 * GIB,
            processes=[
                {"pid": 10, "used": 4 * GIB},
                {"pid": 11, "used": 2 * GIB},
                {"pid": 13, "used": GIB},
            ],
        ),
        device(
            1,
            used=3 * GIB,
            processes=[
                {"pid": 12, "used": 3 * GIB},
                {"pid": 10, "used": None},
                {"pid": 77, "used": 0},
            ],
        ),  # 77: not in the proc root
    ]


def test_processes_are_attributed_to_pods(fake: FakeNvml, sampler: Sampler) -> None:
    fake.write({"devices": two_gpus()})
    report = sampler.sample()
    assert (report.node_name, report.healthy, report.reported_at_unix_seconds) == (
        "gpu-node-1",
        True,
        NOW,
    )
    gpu0, gpu1 = report.gpus
    assert gpu0.pods == (GpuPod(POD_A, 6 * GIB),)
    assert gpu0.unattributed_bytes == 3 * GIB  # the host process (1Gi) + unaccounted (2Gi)
    assert gpu1.pods == (GpuPod(POD_A, 0), GpuPod(POD_B, 3 * GIB))
    assert gpu1.unattributed_bytes == 0
    assert report.pod_uids == {POD_A, POD_B}


def test_a_gpu_lost_mid_run_is_unhealthy_with_its_identity(
    fake: FakeNvml, sampler: Sampler
) -> None:
    fake.write({"devices": two_gpus()})
    before = sampler.sample()
    fake.update_device(1, errors={"*": "GPU_IS_LOST"})
    after = sampler.sample()
    assert after.healthy
    assert [g.healthy for g in after.gpus] == [True, False]
    lost = after.gpus[1]
    assert (lost.uuid, lost.model, lost.total_bytes) == (before.gpus[1].uuid, "NVIDIA L4", 24 * GIB)
    assert lost.reason == "GPU is lost (nvmlDeviceGetHandleByIndex)"
    fake.update_device(1, errors={})  # back after a reset
    assert [g.healthy for g in sampler.sample().gpus] == [True, True]


def test_a_critical_xid_holds_the_gpu_unhealthy(
    fake: FakeNvml, sampler: Sampler, clock: Clock
) -> None:
    fake.write({"devices": two_gpus()})
    sampler.sample()
    assert sampler.critical_xids == {}
    fake.add_event(0, 31)  # an application's MMU fault: not the GPU's
    fake.add_event(1, 79)
    report = sampler.sample()
    assert [g.healthy for g in report.gpus] == [True, False]
    assert sampler.critical_xids == {report.gpus[1].uuid: 1}  # 31 is not counted
    assert report.gpus[1].reason.startswith("critical XID 79 (GPU has fallen off the bus)")
    clock.advance(299)
    assert [g.healthy for g in sampler.sample().gpus] == [True, False]
    clock.advance(1)
    assert [g.healthy for g in sampler.sample().gpus] == [True, True]
    assert sampler.critical_xids == {report.gpus[1].uuid: 1}  # a count, not a hold


def test_critical_xids_are_counted_even_when_xids_hold_nothing(
    fake: FakeNvml, nvml: Nvml, tmp_path: Path, clock: Clock
) -> None:
    """--xid-hold-seconds=0 keeps XIDs from marking GPUs unhealthy; /metrics still counts them."""
    sampler = Sampler(
        "gpu-node-1",
        nvml=nvml,
        locator=PodLocator(tmp_path / "proc"),
        holds=XidHolds(hold_seconds=0),
        clock=lambda: clock.wall,
        monotonic=lambda: clock.mono,
    )
    fake.write({"devices": two_gpus()})
    uuid0 = sampler.sample().gpus[0].uuid
    fake.add_event(0, 48)
    fake.add_event(0, 95)
    report = sampler.sample()
    assert report.gpus[0].healthy
    assert sampler.critical_xids == {uuid0: 2}


def test_no_library_or_init_failure_is_reported_and_retried(
    fake: FakeNvml, sampler: Sampler, clock: Clock
) -> None:
    fake.write({"errors": {"nvmlInitWithFlags": "DRIVER_NOT_LOADED"}, "devices": two_gpus()})
    report = sampler.sample()
    assert (report.healthy, report.gpus) == (False, ())
    assert report.reason == "NVIDIA driver not loaded (nvmlInit: Driver Not Loaded)"
    fake.write({"devices": two_gpus()})
    clock.advance(0.001)  # within the backoff: no new attempt yet
    assert not sampler.sample().healthy
    clock.advance(61)  # past any backoff delay
    recovered = sampler.sample()
    assert recovered.healthy
    assert len(recovered.gpus) == 2


def test_nvml_failing_later_keeps_the_gpus_listed_unhealthy(
    fake: FakeNvml, sampler: Sampler, clock: Clock
) -> None:
    fake.write({"devices": two_gpus()})
    good = sampler.sample()
    fake.write({"errors": {"nvmlDeviceGetCount_v2": "UNKNOWN"}, "devices": two_gpus()})
    broken = sampler.sample()
    assert (broken.healthy, broken.reason) == (False, "cannot count the GPUs: Unknown Error")
    assert [(g.uuid, g.healthy, g.pods) for g in broken.gpus] == [
        (g.uuid, False, ()) for g in good.gpus
    ]
    assert not sampler.nvml.ready  # the session was closed, to be opened afresh
    fake.write({"devices": two_gpus()})
    clock.advance(61)
    assert sampler.sample() == replace(good, reported_at_unix_seconds=clock.wall)
