"""What NVML said about the GPUs, as plain values (pure): the NVML edge (`nodeagent.nvml`)
produces them, the report builder (`nodeagent.report`) consumes them, and neither side's tests
need the other."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ProcessReading:
    pid: int
    used_bytes: int | None  # None when the driver does not say (NVML_VALUE_NOT_AVAILABLE)


@dataclass(frozen=True)
class DeviceReading:
    """One GPU as NVML answered. `error` is set when a query failed with something other than
    NOT_SUPPORTED: the GPU is then unhealthy, and fields that could not be read are empty."""

    index: int
    uuid: str = ""
    model: str = ""
    total_bytes: int | None = None
    used_bytes: int | None = None  # total - free: reserved memory counts as used
    utilization_percent: float | None = None
    memory_utilization_percent: float | None = None
    temperature_celsius: float | None = None
    power_watts: float | None = None
    mig_enabled: bool | None = None
    processes: tuple[ProcessReading, ...] | None = None  # None: unknown (not supported or failed)
    error: str = ""


@dataclass(frozen=True)
class XidEvent:
    index: int  # the device's index
    xid: int
