"""The node GPU state model and the GPUNode report schema (versioned) that carries it.

A node agent measures `NodeReport`s and writes them as a GPUNode's `status`; the extender reads
them back. `report_to_status` and `report_from_status` are the only translation between the two,
and reading validates every field, naming it in the error. Pure: no client imports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from headroom.quantity import format_bytes

# Bump when a field changes meaning; readers refuse versions they do not know.
REPORT_SCHEMA_VERSION = 1


class ReportError(ValueError):
    """A GPUNode status that does not follow the schema; the message names the field."""


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


def format_time(unix_seconds: float) -> str:
    """RFC 3339 in UTC, second precision, as Kubernetes writes times."""
    return datetime.fromtimestamp(unix_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: object, *, field: str) -> float:
    if not isinstance(text, str):
        raise ReportError(f"{field}: expected an RFC 3339 time such as 2024-05-01T12:00:00Z")
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ReportError(
            f"{field}: expected an RFC 3339 time such as 2024-05-01T12:00:00Z (got {text!r})"
        ) from exc
    if parsed.tzinfo is None:
        raise ReportError(f"{field}: the time must carry a zone, such as Z (got {text!r})")
    return parsed.timestamp()


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
    reader = _Reader(status, "status")
    version = reader.integer("schemaVersion", minimum=1)
    if version != REPORT_SCHEMA_VERSION:
        raise ReportError(
            f"status.schemaVersion: this Headroom reads version {REPORT_SCHEMA_VERSION} "
            f"(got {version}); upgrade the extender or the node agents so they match"
        )
    gpus_raw = status.get("gpus", [])
    if not isinstance(gpus_raw, list):
        raise ReportError("status.gpus: expected a list")
    return NodeReport(
        node_name=node_name,
        reported_at_unix_seconds=parse_time(status.get("reportTime"), field="status.reportTime"),
        gpus=tuple(_gpu_from_status(g, f"status.gpus[{i}]") for i, g in enumerate(gpus_raw)),
        healthy=reader.boolean("healthy", default=True),
        reason=reader.string("reason", default=""),
        schema_version=version,
    )


def _gpu_from_status(raw: object, where: str) -> GpuState:
    if not isinstance(raw, Mapping):
        raise ReportError(f"{where}: expected an object")
    r = _Reader(raw, where)
    pods_raw = raw.get("pods", [])
    if not isinstance(pods_raw, list):
        raise ReportError(f"{where}.pods: expected a list")
    pods = []
    for i, p in enumerate(pods_raw):
        if not isinstance(p, Mapping):
            raise ReportError(f"{where}.pods[{i}]: expected an object")
        pr = _Reader(p, f"{where}.pods[{i}]")
        pods.append(GpuPod(uid=pr.string("uid"), used_bytes=pr.integer("usedBytes", minimum=0),
                           namespace=pr.string("namespace", default=""),
                           name=pr.string("name", default="")))
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
        utilization_percent=r.number("utilizationPercent"),
        memory_utilization_percent=r.number("memoryUtilizationPercent"),
        temperature_celsius=r.number("temperatureCelsius"),
        power_watts=r.number("powerWatts"),
        mig_enabled=r.optional_boolean("migEnabled"),
    )


_MISSING = object()


class _Reader:
    """Typed field access on one JSON object, with errors that name `where.key`."""

    def __init__(self, raw: Mapping[str, Any], where: str) -> None:
        self.raw = raw
        self.where = where

    def _get(self, key: str, default: object) -> object:
        value = self.raw.get(key, default)
        if value is _MISSING:
            raise ReportError(f"{self.where}.{key}: required")
        return value

    def integer(self, key: str, *, minimum: int, default: object = _MISSING) -> int:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ReportError(f"{self.where}.{key}: expected an integer >= {minimum} "
                              f"(got {value!r})")
        return value

    def string(self, key: str, *, default: object = _MISSING) -> str:
        value = self._get(key, default)
        if not isinstance(value, str):
            raise ReportError(f"{self.where}.{key}: expected a string (got {value!r})")
        return value

    def boolean(self, key: str, *, default: object = _MISSING) -> bool:
        value = self._get(key, default)
        if not isinstance(value, bool):
            raise ReportError(f"{self.where}.{key}: expected true or false (got {value!r})")
        return value

    def optional_boolean(self, key: str) -> bool | None:
        return None if self.raw.get(key) is None else self.boolean(key)

    def number(self, key: str) -> float | None:
        value = self.raw.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ReportError(f"{self.where}.{key}: expected a number (got {value!r})")
        return float(value)
