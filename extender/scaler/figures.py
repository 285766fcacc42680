"""An AIScaler's status as numbers, for the extender's /metrics (pure: the object in, figures out).

Read from the status the leader wrote (the AIScaler watch cache), so every extender replica, the
standby too, shows the same figures as `kubectl get aiscalers -o wide`. A count the status does not
hold yet (a new AIScaler, a blocked one that never ran a round) is left out rather than shown as 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from extender.scaler.feasibility import LimitReason

REPLICA_FIELDS = ("currentReplicas", "desiredReplicas", "feasibleReplicas", "appliedReplicas")


@dataclass(frozen=True)
class ScalerFigures:
    namespace: str
    name: str
    replicas: Mapping[str, float]  # status field (one of REPLICA_FIELDS) -> count, those present
    limited_by_gpu: bool  # ScalingLimited is True for InsufficientGPUHeadroom
    cold_start_p50_seconds: float | None
    cold_start_p90_seconds: float | None


def scaler_figures(scaler: Mapping[str, Any]) -> ScalerFigures | None:
    """The figures of one AIScaler object; None without a namespace and name."""
    meta = scaler.get("metadata") or {}
    namespace, name = meta.get("namespace"), meta.get("name")
    if not namespace or not name:
        return None
    status = scaler.get("status") or {}
    if not isinstance(status, Mapping):
        status = {}
    replicas = {
        key: float(value)
        for key in REPLICA_FIELDS
        if isinstance(value := status.get(key), int | float) and not isinstance(value, bool)
    }
    cold = status.get("coldStart")
    cold = cold if isinstance(cold, Mapping) else {}
    return ScalerFigures(
        namespace=str(namespace),
        name=str(name),
        replicas=replicas,
        limited_by_gpu=_limited_by_gpu(status),
        cold_start_p50_seconds=_number(cold.get("p50Seconds")),
        cold_start_p90_seconds=_number(cold.get("p90Seconds")),
    )


def _limited_by_gpu(status: Mapping[str, Any]) -> bool:
    return any(
        isinstance(c, Mapping)
        and c.get("type") == "ScalingLimited"
        and c.get("status") == "True"
        and c.get("reason") == LimitReason.INSUFFICIENT_GPU_HEADROOM.value
        for c in status.get("conditions") or []
    )


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None
