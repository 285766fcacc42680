"""Cold start, measured: how long a target's replicas take from creation to serving.

A replica is serving when its `headroom.dev/gpu-ready` condition turns True (its model is resident
on its GPU, as the node agent sees it), or, for a pod without that readiness gate, when it turns
Ready. The time is that condition's `lastTransitionTime` minus the pod's `creationTimestamp`.
Each replica is measured once, when it is first seen serving; the last `MAX_SAMPLES` measured
replicas give the p50 and p90 the AIScaler's status shows. Pure: pods in, numbers out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from headroom import names
from headroom.clock import parse_time
from headroom.fields import FieldError

MAX_SAMPLES = 20  # recent replicas: a new model version's start time shows within a rollout


@dataclass(frozen=True)
class ColdStart:
    p50_seconds: float
    p90_seconds: float
    replicas: int  # how many replicas the figures come from

    def as_status(self) -> dict[str, Any]:
        return {
            "p50Seconds": round(self.p50_seconds, 1),
            "p90Seconds": round(self.p90_seconds, 1),
            "replicas": self.replicas,
        }


def serving_after_seconds(pod: Mapping[str, Any]) -> float | None:
    """Seconds from the pod's creation to its serving, or None while it is not serving (or its
    timestamps do not read)."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    gated = any(
        isinstance(g, Mapping) and g.get("conditionType") == names.GPU_READY_CONDITION
        for g in spec.get("readinessGates") or []
    )
    wanted = names.GPU_READY_CONDITION if gated else "Ready"
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if not isinstance(condition, Mapping) or condition.get("type") != wanted:
            continue
        if condition.get("status") != "True":
            return None
        try:
            created = parse_time(meta.get("creationTimestamp"), field="creationTimestamp")
            ready = parse_time(condition.get("lastTransitionTime"), field="lastTransitionTime")
        except FieldError:
            return None
        return max(0.0, ready - created)
    return None


def record(samples: dict[str, float], pods: Iterable[Mapping[str, Any]]) -> None:
    """Add the replicas seen serving for the first time to `samples` (pod UID -> seconds, oldest
    first), keeping the last MAX_SAMPLES."""
    for pod in pods:
        uid = str((pod.get("metadata") or {}).get("uid") or "")
        if not uid or uid in samples:
            continue
        seconds = serving_after_seconds(pod)
        if seconds is not None:
            samples[uid] = seconds
    for uid in list(samples)[: max(0, len(samples) - MAX_SAMPLES)]:
        del samples[uid]


def summary(samples: Mapping[str, float]) -> ColdStart | None:
    """p50 and p90 (nearest rank) of the samples; None before any replica has served."""
    values = sorted(samples.values())
    if not values:
        return None

    def rank(fraction: float) -> float:
        return values[max(0, math.ceil(fraction * len(values)) - 1)]

    return ColdStart(rank(0.5), rank(0.9), len(values))
