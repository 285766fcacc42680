"""What the AIScaler controller keeps between rounds, a round still reading its metrics, and how
it reads a pod's state and the last scale time a previous leader wrote."""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from extender.scaler.decision import History, MetricObservation, PodState
from extender.scaler.spec import ScalerSpec
from extender.scaler.target import Target
from headroom.clock import parse_time
from headroom.fields import FieldError
from kubeapi.client import JsonDict


@dataclass
class ScalerState:
    """What the controller keeps per AIScaler (by uid) between rounds."""

    history: History | None = None
    next_due_monotonic: float = 0.0
    generation: int | None = None
    last_scale_unix_seconds: float | None = None
    limit: tuple[str, int] | None = None  # (reason, feasible replicas) of the last limit told
    blocked: str | None = None  # the last blocking problem told, so it is told once
    events: int = 0
    cold_starts: dict[str, float] = field(default_factory=dict)  # pod uid -> seconds to serve


@dataclass
class InFlight:
    """A round whose metrics are being read: it ends when they are in, in this tick or a later
    one, so a slow source delays only the AIScalers that read it."""

    scaler: JsonDict
    state: ScalerState
    spec: ScalerSpec
    target: Target
    pods: list[JsonDict]
    reads: Future[dict[str, MetricObservation]]
    started_monotonic: float


def pod_state(pod: Mapping[str, Any]) -> PodState:
    status = pod.get("status") or {}
    ready = any(
        isinstance(c, dict) and c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    pending = (
        not (pod.get("spec") or {}).get("nodeName")
        or status.get("phase") == "Pending"
        or not status.get("podIP")
    )
    return PodState(pod_name(pod), ready=ready and not pending, pending=pending)


def pod_name(pod: Mapping[str, Any]) -> str:
    return str((pod.get("metadata") or {}).get("name", ""))


def last_scale(scaler: Mapping[str, Any]) -> float | None:
    """The lastScaleTime a previous leader wrote, kept across restarts."""
    text = (scaler.get("status") or {}).get("lastScaleTime")
    if not text:
        return None
    try:
        return parse_time(text, field="status.lastScaleTime")
    except FieldError:
        return None
