"""The NVML edge: the only module of Headroom that imports `pynvml` (nvidia-ml-py).

It turns NVML calls into plain readings (`DeviceReading`, `XidEvent`) and NVML failures into
values: an optional query the GPU does not support is `None`; any other error on one device is
that device's `error` (the GPU is reported unhealthy with it); NVML unusable as a whole (library
missing, `nvmlInit` or the device count failing) is `NvmlUnavailable`, which the agent reports as
node-level unhealth while it retries. Nothing is initialised at import: `Nvml.open()` does it.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import pynvml

from nodeagent.readings import DeviceReading, ProcessReading, XidEvent

log = logging.getLogger(__name__)

T = TypeVar("T")

LIBRARY_NOT_FOUND_REASON = (
    "NVML library libnvidia-ml.so.1 not found: the NVIDIA driver is not installed on this node, "
    "or the agent's container does not run with the NVIDIA runtime (NVIDIA_VISIBLE_DEVICES=all, "
    "NVIDIA_DRIVER_CAPABILITIES=utility)"
)
# Events drained per sample at most, so a storm cannot stall sampling.
MAX_EVENTS_PER_DRAIN = 256


class NvmlUnavailable(Exception):
    """NVML cannot be used on this node at all; the message says why, for the GPUNode's reason."""


def describe(exc: BaseException) -> str:
    """NVML's text for an error, without calling into a library that may be gone."""
    if isinstance(exc, pynvml.NVMLError):
        text = pynvml.NVMLError._errcode_to_string.get(exc.value)
        return str(text) if text else f"NVML error {exc.value}"
    return f"{type(exc).__name__}: {exc}"


def _init_reason(exc: BaseException) -> str:
    if isinstance(exc, pynvml.NVMLError_LibraryNotFound):
        return LIBRARY_NOT_FOUND_REASON
    if isinstance(exc, pynvml.NVMLError_DriverNotLoaded):
        return "NVIDIA driver not loaded (nvmlInit: Driver Not Loaded)"
    if isinstance(exc, pynvml.NVMLError_NoPermission):
        return (
            "no permission to use the GPUs (nvmlInit: Insufficient Permissions): the agent "
            "cannot open /dev/nvidia*; run it as a user that can"
        )
    return f"nvmlInit failed: {describe(exc)}"


def _address(handle: Any) -> int:
    return int(ctypes.cast(handle, ctypes.c_void_p).value or 0)


# Errors that mean "this driver has no such query": the reading degrades to None.
_ABSENT = (pynvml.NVMLError_NotSupported, pynvml.NVMLError_FunctionNotFound)
# Errors that mean "this driver has no v2 memory query": use v1.
_NO_MEMORY_V2 = (*_ABSENT, pynvml.NVMLError_ArgumentVersionMismatch)


class _DeviceErrors:
    """Collects the first error of one device's queries; once the GPU is lost, stops asking."""

    def __init__(self) -> None:
        self.first = ""
        self.lost = False

    def call(self, name: str, query: Callable[[], T], *, optional: bool = True) -> T | None:
        if self.lost:
            return None
        try:
            return query()
        except _ABSENT:
            if optional:
                return None
            self._record(f"Not Supported ({name})")
        except Exception as exc:  # NVMLError, or anything odd from ctypes: a device error
            self.failed(name, exc)
        return None

    def failed(self, name: str, exc: BaseException) -> None:
        self.lost = self.lost or isinstance(exc, pynvml.NVMLError_GpuIsLost)
        self._record(f"{describe(exc)} ({name})")

    def _record(self, message: str) -> None:
        if not self.first:
            self.first = message
        log.debug("NVML query failed: %s", message)


class Nvml:
    """One NVML session: `open()`, then `read_devices()` and `drain_events()` each sample."""

    def __init__(self) -> None:
        self.ready = False
        self.driver_version = ""
        self._event_set: Any = None
        self._index_by_handle: dict[int, int] = {}
        self._memory_v2 = True  # until the driver says it has no v2 query

    def open(self) -> None:
        """nvmlInit and event registration. Raises NvmlUnavailable with the reason."""
        try:
            pynvml.nvmlInit()
        except Exception as exc:  # pynvml raises NVMLError; anything else is as fatal here
            raise NvmlUnavailable(_init_reason(exc)) from exc
        self.ready = True
        self._index_by_handle = {}
        try:
            self.driver_version = str(pynvml.nvmlSystemGetDriverVersion())
        except pynvml.NVMLError as exc:
            log.info("NVML driver version unknown: %s", describe(exc))
        self._register_events()

    def close(self) -> None:
        if not self.ready:
            return
        self.ready = False
        if self._event_set is not None:
            try:
                pynvml.nvmlEventSetFree(self._event_set)
            except pynvml.NVMLError as exc:
                log.debug("nvmlEventSetFree: %s", describe(exc))
            self._event_set = None
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError as exc:
            log.debug("nvmlShutdown: %s", describe(exc))

    def _register_events(self) -> None:
        """Ask for critical-XID events on every GPU that supports them; a GPU that does not is
        still read, it only gets no XID-based health."""
        try:
            self._event_set = pynvml.nvmlEventSetCreate()
            count = pynvml.nvmlDeviceGetCount()
        except pynvml.NVMLError as exc:
            log.warning("NVML events unavailable (%s): XID errors will not be seen", describe(exc))
            return
        wanted = pynvml.nvmlEventTypeXidCriticalError
        for index in range(count):
            try:
                handle = pynvml.nvmlDeviceGetHandleByIndex(index)
                self._index_by_handle[_address(handle)] = index
                if pynvml.nvmlDeviceGetSupportedEventTypes(handle) & wanted:
                    pynvml.nvmlDeviceRegisterEvents(handle, wanted, self._event_set)
                else:
                    log.warning("GPU %d does not report XID events", index)
            except pynvml.NVMLError as exc:
                log.warning("GPU %d: cannot register for XID events: %s", index, describe(exc))

    def read_devices(self) -> list[DeviceReading]:
        if not self.ready:
            raise NvmlUnavailable("NVML is not initialised")
        try:
            count = pynvml.nvmlDeviceGetCount()
        except Exception as exc:
            raise NvmlUnavailable(f"cannot count the GPUs: {describe(exc)}") from exc
        return [self._read(index) for index in range(count)]

    def _read(self, index: int) -> DeviceReading:
        errors = _DeviceErrors()
        handle = errors.call(
            "nvmlDeviceGetHandleByIndex",
            lambda: pynvml.nvmlDeviceGetHandleByIndex(index),
            optional=False,
        )
        if handle is None:
            return DeviceReading(index=index, error=errors.first)
        self._index_by_handle[_address(handle)] = index
        uuid = errors.call(
            "nvmlDeviceGetUUID", lambda: pynvml.nvmlDeviceGetUUID(handle), optional=False
        )
        model = errors.call("nvmlDeviceGetName", lambda: pynvml.nvmlDeviceGetName(handle))
        memory = self._memory(handle, errors)
        util = errors.call(
            "nvmlDeviceGetUtilizationRates", lambda: pynvml.nvmlDeviceGetUtilizationRates(handle)
        )
        temperature = errors.call(
            "nvmlDeviceGetTemperature",
            lambda: pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU),
        )
        milliwatts = errors.call(
            "nvmlDeviceGetPowerUsage", lambda: pynvml.nvmlDeviceGetPowerUsage(handle)
        )
        mig = errors.call("nvmlDeviceGetMigMode", lambda: pynvml.nvmlDeviceGetMigMode(handle))
        processes = errors.call(
            "nvmlDeviceGetComputeRunningProcesses",
            lambda: pynvml.nvmlDeviceGetComputeRunningProcesses(handle),
        )
        return DeviceReading(
            index=index,
            uuid=str(uuid or ""),
            model=str(model or ""),
            total_bytes=memory[0] if memory else None,
            used_bytes=memory[1] if memory else None,
            utilization_percent=float(util.gpu) if util is not None else None,
            memory_utilization_percent=float(util.memory) if util is not None else None,
            temperature_celsius=float(temperature) if temperature is not None else None,
            power_watts=milliwatts / 1000.0 if milliwatts is not None else None,
            mig_enabled=bool(mig[0] == pynvml.NVML_DEVICE_MIG_ENABLE) if mig else None,
            processes=None
            if processes is None
            else tuple(
                ProcessReading(
                    pid=int(p.pid),
                    used_bytes=None if p.usedGpuMemory is None else int(p.usedGpuMemory),
                )
                for p in processes
            ),
            error=errors.first,
        )

    def _memory(self, handle: Any, errors: _DeviceErrors) -> tuple[int, int] | None:
        """(total, used) where used = total - free, from the v2 query when the driver has it
        (v2's `used` leaves out reserved memory, so `free` is the number both versions agree
        on)."""
        info = None
        if errors.lost:
            return None
        if self._memory_v2:
            try:
                info = pynvml.nvmlDeviceGetMemoryInfo(handle, version=pynvml.nvmlMemory_v2)
            except _NO_MEMORY_V2:
                log.info("NVML has no v2 memory query here; using v1")
                self._memory_v2 = False
            except Exception as exc:
                errors.failed("nvmlDeviceGetMemoryInfo_v2", exc)
                return None
        if info is None:
            info = errors.call(
                "nvmlDeviceGetMemoryInfo",
                lambda: pynvml.nvmlDeviceGetMemoryInfo(handle),
                optional=False,
            )
        if info is None:
            return None
        total, free = int(info.total), int(info.free)
        return total, max(0, total - free)

    def drain_events(self) -> list[XidEvent]:
        """The XID events that arrived since the last call, without waiting."""
        if not self.ready or self._event_set is None:
            return []
        events: list[XidEvent] = []
        for _ in range(MAX_EVENTS_PER_DRAIN):
            try:
                data = pynvml.nvmlEventSetWait_v2(self._event_set, 0)
            except pynvml.NVMLError_Timeout:
                break
            except pynvml.NVMLError as exc:
                log.warning("reading NVML events failed: %s", describe(exc))
                break
            if not data.eventType & pynvml.nvmlEventTypeXidCriticalError:
                continue
            index = self._index_by_handle.get(_address(data.device))
            if index is None:
                log.warning("XID %d on a GPU this agent has no handle for", data.eventData)
                continue
            events.append(XidEvent(index=index, xid=int(data.eventData)))
        return events
