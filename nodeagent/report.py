"""From NVML readings to a `NodeReport`, and when a report is worth writing (pure).

Accounting (DESIGN.md): a GPU's `used_bytes` is everything not free (`total - free`, so memory the
driver reserves counts as used and `free_bytes` is NVML's own free); each pod's bytes are the sum
over its processes; `unattributed_bytes` is the rest of the used memory, clamped at 0: processes
outside pods, reserved memory, and use no process accounts for.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace

from headroom.quantity import format_bytes
from headroom.report import GpuPod, GpuState, NodeReport
from nodeagent.readings import DeviceReading, ProcessReading
from nodeagent.xid import XidHolds

PodOf = Callable[[int], str | None]  # pid -> pod UID, None outside pods


def attribute(
    processes: Iterable[ProcessReading], *, used_bytes: int, pod_of: PodOf
) -> tuple[tuple[GpuPod, ...], int]:
    """(pods sorted by UID, unattributed bytes). A pod whose processes' memory the driver does
    not report is still listed, with 0 bytes: that it holds the GPU matters on its own."""
    per_pod: dict[str, int] = {}
    for process in processes:
        uid = pod_of(process.pid)
        if uid is not None:
            per_pod[uid] = per_pod.get(uid, 0) + (process.used_bytes or 0)
    pods = tuple(GpuPod(uid=uid, used_bytes=n) for uid, n in sorted(per_pod.items()))
    return pods, max(0, used_bytes - sum(per_pod.values()))


def _percent(value: float | None) -> float | None:
    return value if value is not None and 0.0 <= value <= 100.0 else None


def _finite(value: float | None, *, minimum: float = -math.inf) -> float | None:
    return value if value is not None and math.isfinite(value) and value >= minimum else None


def gpu_state(
    reading: DeviceReading, *, pod_of: PodOf, hold_reason: str | None, known: GpuState | None
) -> GpuState:
    """One GPU's state. What a failed query could not say comes from the last good reading of
    the same index (`known`), so an unhealthy GPU keeps its identity in the report. Values NVML
    gives outside their range are dropped rather than written (the CRD would refuse them)."""
    uuid = reading.uuid or (known.uuid if known else "") or f"unknown-gpu-{reading.index}"
    total = (
        reading.total_bytes
        if reading.total_bytes is not None
        else (known.total_bytes if known else 0)
    )
    used = (
        reading.used_bytes if reading.used_bytes is not None else (known.used_bytes if known else 0)
    )
    used = min(used, total)
    pods: tuple[GpuPod, ...] = ()
    unattributed = used
    if reading.processes is not None:
        pods, unattributed = attribute(reading.processes, used_bytes=used, pod_of=pod_of)
    reason = reading.error or hold_reason or ""
    return GpuState(
        index=reading.index,
        uuid=uuid,
        model=reading.model or (known.model if known else ""),
        total_bytes=total,
        used_bytes=used,
        healthy=not reason,
        reason=reason,
        pods=pods,
        unattributed_bytes=unattributed,
        utilization_percent=_percent(reading.utilization_percent),
        memory_utilization_percent=_percent(reading.memory_utilization_percent),
        temperature_celsius=_finite(reading.temperature_celsius),
        power_watts=_finite(reading.power_watts, minimum=0.0),
        mig_enabled=reading.mig_enabled,
    )


def build_report(
    node_name: str,
    readings: Iterable[DeviceReading],
    *,
    now_unix_seconds: float,
    pod_of: PodOf,
    holds: XidHolds,
    known: Mapping[int, GpuState],
) -> NodeReport:
    gpus = []
    for reading in readings:
        previous = known.get(reading.index)
        uuid = reading.uuid or (previous.uuid if previous else "")
        hold = holds.reason(uuid, now_unix_seconds=now_unix_seconds) if uuid else None
        gpus.append(gpu_state(reading, pod_of=pod_of, hold_reason=hold, known=previous))
    return NodeReport(
        node_name=node_name, reported_at_unix_seconds=now_unix_seconds, gpus=tuple(gpus)
    )


def unavailable_report(
    node_name: str, reason: str, *, now_unix_seconds: float, known: Mapping[int, GpuState]
) -> NodeReport:
    """NVML unusable: the node is unhealthy, and the GPUs this agent last saw stay listed, each
    unhealthy with the same reason (their count stays visible; none is offered for work). Pods
    are left out: nothing can be said about them."""
    gpus = tuple(
        replace(
            known[i],
            healthy=False,
            reason=reason,
            pods=(),
            utilization_percent=None,
            memory_utilization_percent=None,
            temperature_celsius=None,
            power_watts=None,
        )
        for i in sorted(known)
    )
    return NodeReport(
        node_name=node_name,
        reported_at_unix_seconds=now_unix_seconds,
        gpus=gpus,
        healthy=False,
        reason=reason,
    )


def publish_reason(
    last: NodeReport | None,
    new: NodeReport,
    *,
    deadband_bytes: int,
    heartbeat_seconds: float,
    interval_seconds: float,
) -> str | None:
    """Why `new` should be written given the `last` one written, or None to skip it. Memory is
    compared with the last *written* report, so slow drift is published once it adds up."""
    if last is None:
        return "first report"
    if (last.healthy, last.reason) != (new.healthy, new.reason):
        return "node health changed"
    if [(g.index, g.uuid) for g in last.gpus] != [(g.index, g.uuid) for g in new.gpus]:
        return "the set of GPUs changed"
    for before, after in zip(last.gpus, new.gpus, strict=True):
        change = _gpu_change(before, after, deadband_bytes)
        if change:
            return f"GPU {after.index}: {change}"
    # Samples come every interval, so the one nearest the heartbeat is taken, not the one after.
    if (
        new.reported_at_unix_seconds - last.reported_at_unix_seconds + interval_seconds / 2
        >= heartbeat_seconds
    ):
        return "heartbeat"
    return None


def _gpu_change(before: GpuState, after: GpuState, deadband_bytes: int) -> str:
    if (before.healthy, before.reason) != (after.healthy, after.reason):
        return "health changed"
    if (before.total_bytes, before.mig_enabled) != (after.total_bytes, after.mig_enabled):
        return "total memory or MIG mode changed"
    pods_before = {p.uid: p.used_bytes for p in before.pods}
    pods_after = {p.uid: p.used_bytes for p in after.pods}
    if pods_before.keys() != pods_after.keys():
        return "the set of pods changed"
    pairs = [
        ("used memory", before.used_bytes, after.used_bytes),
        ("unattributed memory", before.unattributed_bytes, after.unattributed_bytes),
    ]
    pairs += [(f"pod {uid}", n, pods_after[uid]) for uid, n in pods_before.items()]
    for what, old, new in pairs:
        if abs(new - old) > deadband_bytes:
            return f"{what} changed by {format_bytes(new - old)}"
    return ""
