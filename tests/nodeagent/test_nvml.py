"""The NVML edge with the real pynvml bindings calling the fake libnvidia-ml.so.1: every field,
every degradation to None, every error path, and XID events through NVML's event API."""

from __future__ import annotations

import pytest

from nodeagent.nvml import LIBRARY_NOT_FOUND_REASON, Nvml, NvmlUnavailable
from nodeagent.readings import DeviceReading, ProcessReading, XidEvent
from tooling.fakenvml import GIB, FakeNvml, FakeProcess, device

MIB = 2**20


def test_every_field_is_read_through_pynvml(fake: FakeNvml, nvml: Nvml) -> None:
    fake.write(
        {
            "driver_version": "535.183.01",
            "devices": [
                device(
                    0,
                    total=24 * GIB,
                    used=3 * GIB,
                    reserved=512 * MIB,
                    gpu_util=41,
                    mem_util=17,
                    temperature_c=63,
                    power_mw=72_500,
                    name="NVIDIA L4",
                    processes=[
                        {"pid": 101, "used": 2 * GIB},
                        {"pid": 102, "used": None},
                        {"pid": 103, "used": 768 * MIB},
                    ],
                ),
                device(
                    1,
                    total=80 * GIB,
                    used=0,
                    name="NVIDIA H100 80GB HBM3",
                    mig_current=1,
                    mig_pending=1,
                    gpu_util=0,
                    mem_util=0,
                    temperature_c=31,
                    power_mw=61_000,
                ),
            ],
        }
    )
    nvml.open()
    assert nvml.driver_version == "535.183.01"
    first, second = nvml.read_devices()
    assert first == DeviceReading(
        index=0,
        uuid="GPU-00000000-0000-4000-8000-000000000000",
        model="NVIDIA L4",
        total_bytes=24 * GIB,
        used_bytes=3 * GIB + 512 * MIB,  # reserved counts as used
        utilization_percent=41.0,
        memory_utilization_percent=17.0,
        temperature_celsius=63.0,
        power_watts=72.5,
        mig_enabled=False,
        processes=(
            ProcessReading(101, 2 * GIB),
            ProcessReading(102, None),
            ProcessReading(103, 768 * MIB),
        ),
    )
    assert second.uuid == "GPU-00000001-0000-4000-8000-000000000001"
    assert (second.model, second.total_bytes, second.used_bytes) == (
        "NVIDIA H100 80GB HBM3",
        80 * GIB,
        0,
    )
    assert (second.mig_enabled, second.processes, second.error) == (True, (), "")


def test_many_processes_take_the_grow_and_retry_path(fake: FakeNvml, nvml: Nvml) -> None:
    processes: list[FakeProcess] = [{"pid": 1000 + i, "used": (i + 1) * MIB} for i in range(40)]
    fake.write({"devices": [device(0, used=2 * GIB, processes=processes)]})
    nvml.open()
    (reading,) = nvml.read_devices()
    assert reading.processes == tuple(ProcessReading(1000 + i, (i + 1) * MIB) for i in range(40))


@pytest.mark.parametrize(
    "v2_error", ["FUNCTION_NOT_FOUND", "ARGUMENT_VERSION_MISMATCH", "NOT_SUPPORTED"]
)
def test_memory_falls_back_to_v1_where_the_driver_has_no_v2(
    fake: FakeNvml, nvml: Nvml, v2_error: str
) -> None:
    fake.write(
        {
            "devices": [
                device(
                    0,
                    total=16 * GIB,
                    used=5 * GIB,
                    reserved=GIB,
                    errors={"nvmlDeviceGetMemoryInfo_v2": v2_error},
                )
            ]
        }
    )
    nvml.open()
    (reading,) = nvml.read_devices()
    assert (reading.total_bytes, reading.used_bytes, reading.error) == (16 * GIB, 6 * GIB, "")


OPTIONAL = {
    "nvmlDeviceGetUtilizationRates": ("utilization_percent", "memory_utilization_percent"),
    "nvmlDeviceGetTemperature": ("temperature_celsius",),
    "nvmlDeviceGetPowerUsage": ("power_watts",),
    "nvmlDeviceGetMigMode": ("mig_enabled",),
    "nvmlDeviceGetComputeRunningProcesses_v3": ("processes",),
    "nvmlDeviceGetName": ("model",),
}


@pytest.mark.parametrize("function", sorted(OPTIONAL))
def test_an_unsupported_optional_query_degrades_to_none(
    fake: FakeNvml, nvml: Nvml, function: str
) -> None:
    fake.write(
        {
            "devices": [
                device(
                    0,
                    used=GIB,
                    processes=[{"pid": 7, "used": GIB}],
                    errors={function: "NOT_SUPPORTED"},
                )
            ]
        }
    )
    nvml.open()
    (reading,) = nvml.read_devices()
    full = DeviceReading(
        index=0,
        uuid="GPU-00000000-0000-4000-8000-000000000000",
        model="NVIDIA L4",
        total_bytes=24 * GIB,
        used_bytes=GIB,
        utilization_percent=40.0,
        memory_utilization_percent=20.0,
        temperature_celsius=55.0,
        power_watts=72.0,
        mig_enabled=False,
        processes=(ProcessReading(7, GIB),),
    )
    degraded = {field: ("" if field == "model" else None) for field in OPTIONAL[function]}
    assert reading == DeviceReading(**{**full.__dict__, **degraded})


def test_sensors_the_gpu_lacks_are_none(fake: FakeNvml, nvml: Nvml) -> None:
    bare = device(0)
    for key in ("gpu_util", "mem_util", "temperature_c", "power_mw", "mig_current"):
        del bare[key]  # type: ignore[misc]
    fake.write({"devices": [bare]})
    nvml.open()
    (reading,) = nvml.read_devices()
    assert (
        reading.utilization_percent,
        reading.temperature_celsius,
        reading.power_watts,
        reading.mig_enabled,
        reading.error,
    ) == (None, None, None, None, "")


def test_a_lost_gpu_is_an_error_on_that_device_only(fake: FakeNvml, nvml: Nvml) -> None:
    fake.write({"devices": [device(0), device(1)]})
    nvml.open()
    fake.update_device(1, errors={"*": "GPU_IS_LOST"})
    healthy, lost = nvml.read_devices()
    assert healthy.error == ""
    assert lost == DeviceReading(index=1, error="GPU is lost (nvmlDeviceGetHandleByIndex)")


@pytest.mark.parametrize(
    ("function", "error", "expected"),
    [
        ("nvmlDeviceGetUUID", "GPU_IS_LOST", "GPU is lost (nvmlDeviceGetUUID)"),
        ("nvmlDeviceGetUUID", "NOT_SUPPORTED", "Not Supported (nvmlDeviceGetUUID)"),
        ("nvmlDeviceGetMemoryInfo_v2", "UNKNOWN", "Unknown Error (nvmlDeviceGetMemoryInfo_v2)"),
        ("nvmlDeviceGetPowerUsage", "GPU_IS_LOST", "GPU is lost (nvmlDeviceGetPowerUsage)"),
        ("nvmlDeviceGetTemperature", "UNKNOWN", "Unknown Error (nvmlDeviceGetTemperature)"),
        (
            "nvmlDeviceGetComputeRunningProcesses_v3",
            "NO_PERMISSION",
            "Insufficient Permissions (nvmlDeviceGetComputeRunningProcesses)",
        ),
        ("nvmlDeviceGetMigMode", "RESET_REQUIRED", "GPU requires restart (nvmlDeviceGetMigMode)"),
        (
            "nvmlDeviceGetUtilizationRates",
            "CORRUPTED_INFOROM",
            "Corrupted infoROM (nvmlDeviceGetUtilizationRates)",
        ),
    ],
)
def test_a_device_error_names_the_error_and_the_query(
    fake: FakeNvml, nvml: Nvml, function: str, error: str, expected: str
) -> None:
    fake.write({"devices": [device(0, errors={function: error})]})
    nvml.open()
    (reading,) = nvml.read_devices()
    assert reading.error == expected


def test_after_gpu_is_lost_no_further_query_is_made(fake: FakeNvml, nvml: Nvml) -> None:
    # UUID fails as lost; the power query would fail differently if it were still asked.
    fake.write(
        {
            "devices": [
                device(
                    0,
                    errors={
                        "nvmlDeviceGetUUID": "GPU_IS_LOST",
                        "nvmlDeviceGetPowerUsage": "UNKNOWN",
                    },
                )
            ]
        }
    )
    nvml.open()
    (reading,) = nvml.read_devices()
    assert reading == DeviceReading(index=0, error="GPU is lost (nvmlDeviceGetUUID)")


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        ("DRIVER_NOT_LOADED", "NVIDIA driver not loaded"),
        ("NO_PERMISSION", "no permission to use the GPUs"),
        (
            "LIB_RM_VERSION_MISMATCH",
            "nvmlInit failed: RM has detected an NVML/RM version mismatch.",
        ),
        ("LIBRARY_NOT_FOUND", LIBRARY_NOT_FOUND_REASON),
    ],
)
def test_init_failure_is_unavailable_with_a_reason(
    fake: FakeNvml, nvml: Nvml, error: str, reason: str
) -> None:
    fake.write({"errors": {"nvmlInitWithFlags": error}, "devices": [device(0)]})
    with pytest.raises(NvmlUnavailable) as info:
        nvml.open()
    assert str(info.value).startswith(reason)
    assert not nvml.ready
    fake.write({"devices": [device(0)]})  # the driver is back: the next attempt works
    nvml.open()
    assert [r.index for r in nvml.read_devices()] == [0]


def test_a_missing_state_file_looks_like_no_driver(fake: FakeNvml, nvml: Nvml) -> None:
    fake.path.unlink()
    with pytest.raises(NvmlUnavailable, match="NVIDIA driver not loaded"):
        nvml.open()


def test_a_device_count_failure_makes_nvml_unavailable(fake: FakeNvml, nvml: Nvml) -> None:
    fake.write({"devices": [device(0)]})
    nvml.open()
    fake.write({"errors": {"nvmlDeviceGetCount_v2": "UNKNOWN"}, "devices": [device(0)]})
    with pytest.raises(NvmlUnavailable, match="cannot count the GPUs: Unknown Error"):
        nvml.read_devices()


def test_reading_before_open_is_unavailable(nvml: Nvml) -> None:
    with pytest.raises(NvmlUnavailable, match="not initialised"):
        nvml.read_devices()


def test_xid_events_arrive_once_each_for_the_right_gpu(fake: FakeNvml, nvml: Nvml) -> None:
    fake.write({"devices": [device(0), device(1), device(2)]})
    fake.add_event(0, 13)  # before registration: NVML only delivers what happens after
    nvml.open()
    assert nvml.drain_events() == []
    fake.add_event(2, 79)
    fake.add_event(1, 48)
    assert nvml.drain_events() == [XidEvent(index=2, xid=79), XidEvent(index=1, xid=48)]
    assert nvml.drain_events() == []


def test_other_event_types_are_not_xids(fake: FakeNvml, nvml: Nvml) -> None:
    fake.write({"devices": [device(0)]})
    nvml.open()
    fake.add_event(0, 0, event_type=0x4)  # a P-state change, not registered for
    fake.add_event(0, 94)
    assert nvml.drain_events() == [XidEvent(index=0, xid=94)]


def test_a_gpu_without_xid_events_is_still_read(fake: FakeNvml, nvml: Nvml) -> None:
    fake.write({"devices": [device(0, supported_events=0x4), device(1)]})
    nvml.open()
    fake.add_event(0, 79)
    fake.add_event(1, 79)
    assert nvml.drain_events() == [XidEvent(index=1, xid=79)]
    assert [r.error for r in nvml.read_devices()] == ["", ""]


@pytest.mark.parametrize("function", ["nvmlEventSetCreate", "nvmlEventSetWait_v2"])
def test_a_broken_event_api_costs_the_events_only(
    fake: FakeNvml, nvml: Nvml, function: str
) -> None:
    fake.write({"errors": {function: "UNKNOWN"}, "devices": [device(0)]})
    nvml.open()
    fake.add_event(0, 79)
    assert nvml.drain_events() == []
    assert nvml.read_devices()[0].error == ""


def test_registering_a_device_can_fail_alone(fake: FakeNvml, nvml: Nvml) -> None:
    fake.write({"devices": [device(0, errors={"nvmlDeviceRegisterEvents": "UNKNOWN"}), device(1)]})
    nvml.open()
    fake.add_event(0, 79)
    fake.add_event(1, 95)
    assert nvml.drain_events() == [XidEvent(index=1, xid=95)]


def test_close_ends_the_session(fake: FakeNvml, nvml: Nvml) -> None:
    fake.write({"devices": [device(0)]})
    nvml.open()
    nvml.close()
    assert not nvml.ready
    assert nvml.drain_events() == []
    with pytest.raises(NvmlUnavailable):
        nvml.read_devices()
