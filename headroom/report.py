"""The node GPU state model and the GPUNode report schema (versioned) that carries it.

A node agent measures `NodeReport`s and writes them as a GPUNode's `status`; the extender reads
them back. `report_to_status` and `report_from_status` are the only translation between the two,
and reading validates every field, naming it in the error. Pure: no client imports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from headroom.clock import format_time, parse_time
from headroom.fields import FieldError, FieldReader, read_mapping
from headroom.quantity import format_bytes

# Bump when a field changes meaning; readers refuse versions they do not know.
REPORT_SCHEMA_VERSION = 1


class ReportError(FieldError):
    """A GPUNode status that does not follow the schema; `field` names the field."""


@dataclass(frozen=True)
class GpuPod:
    """A pod seen using a GPU, with the memory its processes hold there."""

    uid: str
    used_bytes: int
    namespace: str = ""
    name: str = ""


@dataclass(frozen=True)
class GpuState:
    """One GPU as the agent saw it. `used_bytes` is what the device reports in use, all of it."""

    index: int
    uuid: str
    model: str
    total_bytes: int
    used_bytes: int
    healthy: bool = True
    reason: str = ""
    pods: tuple[GpuPod, ...] = ()
    unattributed_bytes: int = 0  # used by processes that belong to no pod
    utilization_percent: float | None = None
    memory_utilization_percent: float | None = None
    temperature_celsius: float | None = None
    power_watts: float | None = None
    mig_enabled: bool | None = None

    @property
    def free_bytes(self) -> int:
        return max(0, self.total_bytes - self.used_bytes)


@dataclass(frozen=True)
class NodeReport:
    """Everything one agent reported about its node at one moment."""

    node_name: str
    reported_at_unix_seconds: float
    gpus: tuple[GpuState, ...] = ()
    healthy: bool = True  # False when NVML itself cannot be read on the node
    reason: str = ""
    schema_version: int = REPORT_SCHEMA_VERSION
    pod_uids: frozenset[str] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        uids = frozenset(p.uid for g in self.gpus for p in g.pods)
        object.__setattr__(self, "pod_uids", uids)

    def age_seconds(self, now_unix_seconds: float) -> float:
        return max(0.0, now_unix_seconds - self.reported_at_unix_seconds)


def with_taints(report: NodeReport, tainted: Mapping[str, str]) -> NodeReport:
    """The report with each GPU named in `tainted` (UUID -> taint) counted unhealthy: a device
    taint keeps new claims off a GPU just as a fault does."""
    if not any(g.uuid in tainted for g in report.gpus):
        return report
    gpus = tuple(
        replace(g, healthy=False, reason=f"device taint {tainted[g.uuid]}")
        if g.uuid in tainted and g.healthy
        else g
        for g in report.gpus
    )
    return replace(report, gpus=gpus)


def is_fresh(report: NodeReport, *, now_unix_seconds: float, staleness_seconds: float) -> bool:
    """Whether the report is recent enough to act on (no older than the staleness limit)."""
    return now_unix_seconds - report.reported_at_unix_seconds <= staleness_seconds


def stale_reason(
    report: NodeReport, *, now_unix_seconds: float, staleness_seconds: float
) -> str | None:
    """Why the report is too old to act on, in the words filter and gate both give; None when
    it is fresh."""
    if is_fresh(report, now_unix_seconds=now_unix_seconds, staleness_seconds=staleness_seconds):
        return None
    return (
        f"GPU report {report.age_seconds(now_unix_seconds):.0f}s old "
        f"(stale after {staleness_seconds:.0f}s)"
    )


def report_to_status(report: NodeReport) -> dict[str, Any]:
    """The GPUNode `status` for a report, with summary fields for printer columns.

    The summaries (`gpuCount` .. `unclaimedGPUs`) are derived from `gpus` for people reading
    `kubectl get gpunodes`; `report_from_status` ignores them, so they carry no contract.
    """
    healthy_gpus = [g for g in report.gpus if g.healthy]
    free_total = sum(g.free_bytes for g in healthy_gpus)
    largest_free = max((g.free_bytes for g in healthy_gpus), default=0)
    return {
        "schemaVersion": report.schema_version,
        "reportTime": format_time(report.reported_at_unix_seconds),
        "healthy": report.healthy,
        "reason": report.reason,
        "gpuCount": len(report.gpus),
        "healthyGPUs": len(healthy_gpus),
        "freeMemory": format_bytes(free_total),
        "largestFree": format_bytes(largest_free),
        # What a pod that takes whole GPUs (the default, exclusive mode) can still get: a GPU
        # some pod uses is taken for it however much memory that GPU has left.
        "unclaimedGPUs": sum(1 for g in healthy_gpus if not g.pods),
        "gpus": [_gpu_to_status(g) for g in report.gpus],
    }


def _gpu_to_status(gpu: GpuState) -> dict[str, Any]:
    out: dict[str, Any] = {
        "index": gpu.index,
        "uuid": gpu.uuid,
        "model": gpu.model,
        "totalBytes": gpu.total_bytes,
        "usedBytes": gpu.used_bytes,
        "healthy": gpu.healthy,
        "reason": gpu.reason,
        "unattributedBytes": gpu.unattributed_bytes,
        "pods": [
            {"uid": p.uid, "namespace": p.namespace, "name": p.name, "usedBytes": p.used_bytes}
            for p in gpu.pods
        ],
    }
    for key, value in _optional_gpu_fields(gpu).items():
        if value is not None:
            out[key] = value
    return out


def _optional_gpu_fields(gpu: GpuState) -> dict[str, float | bool | None]:
    return {
        "utilizationPercent": gpu.utilization_percent,
        "memoryUtilizationPercent": gpu.memory_utilization_percent,
        "temperatureCelsius": gpu.temperature_celsius,
        "powerWatts": gpu.power_watts,
        "migEnabled": gpu.mig_enabled,
    }


def report_from_status(node_name: str, status: Mapping[str, Any]) -> NodeReport:
    """Read a GPUNode `status` back into a report. Raises ReportError naming the bad field."""
    reader = FieldReader(status, "status", error=ReportError)
    version = reader.integer("schemaVersion", minimum=1)
    if version != REPORT_SCHEMA_VERSION:
        raise ReportError(
            "status.schemaVersion",
            f"this Headroom reads version {REPORT_SCHEMA_VERSION} "
            f"(got {version}); upgrade the extender or the node agents so they match",
        )
    gpus_raw = reader.list("gpus", default=[])
    return NodeReport(
        node_name=node_name,
        reported_at_unix_seconds=parse_time(
            status.get("reportTime"), field="status.reportTime", error=ReportError
        ),
        gpus=tuple(_gpu_from_status(g, f"status.gpus[{i}]") for i, g in enumerate(gpus_raw)),
        healthy=reader.boolean("healthy", default=True),
        reason=reader.string("reason", default=""),
        schema_version=version,
    )


def _gpu_from_status(raw: object, where: str) -> GpuState:
    r = FieldReader(
        read_mapping(raw, where, show=None, error=ReportError), where, error=ReportError
    )
    pods = []
    for i, p in enumerate(r.list("pods", default=[])):
        pr = FieldReader(
            read_mapping(p, f"{where}.pods[{i}]", show=None, error=ReportError),
            f"{where}.pods[{i}]",
            error=ReportError,
        )
        pods.append(
            GpuPod(
                uid=pr.string("uid"),
                used_bytes=pr.integer("usedBytes", minimum=0),
                namespace=pr.string("namespace", default=""),
                name=pr.string("name", default=""),
            )
        )
    return GpuState(
        index=r.integer("index", minimum=0),
        uuid=r.string("uuid"),
        model=r.string("model", default=""),
        total_bytes=r.integer("totalBytes", minimum=0),
        used_bytes=r.integer("usedBytes", minimum=0),
        healthy=r.boolean("healthy", default=True),
        reason=r.string("reason", default=""),
        pods=tuple(pods),
        unattributed_bytes=r.integer("unattributedBytes", minimum=0, default=0),
        utilization_percent=r.optional_number("utilizationPercent"),
        memory_utilization_percent=r.optional_number("memoryUtilizationPercent"),
        temperature_celsius=r.optional_number("temperatureCelsius"),
        power_watts=r.optional_number("powerWatts"),
        mig_enabled=r.optional_boolean("migEnabled"),
    )
