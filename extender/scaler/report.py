"""What the scaler tells people: the AIScaler's status and the Events `kubectl describe` shows.

Pure builders: `round_status` for a round that ran, `blocked_status` for one that could not (an
invalid spec, a missing target, a rival HPA), `with_transitions` keeping each condition's
lastTransitionTime while its status stays the same, and `event` for a core/v1 Event about an
AIScaler. The controller decides when to write them.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from extender.scaler.coldstart import ColdStart
from extender.scaler.decision import Observations
from extender.scaler.evaluate import ScalingOutcome
from extender.scaler.spec import MetricSpec
from headroom import names
from headroom.clock import format_time

JsonDict = dict[str, Any]
COMPONENT = "headroom-scaler"


def condition(kind: str, status: bool, reason: str, message: str) -> JsonDict:
    return {
        "type": kind,
        "status": "True" if status else "False",
        "reason": reason,
        "message": message,
    }


def round_status(
    outcome: ScalingOutcome,
    observations: Observations,
    *,
    metrics: Sequence[MetricSpec],
    applied_replicas: int,
    generation: int,
    last_scale_unix_seconds: float | None,
    cold_start: ColdStart | None = None,
    schedule: Mapping[str, Any] | None = None,
) -> JsonDict:
    """The status after a round in which the scaler read its target and metrics."""
    decision, limited = outcome.decision, outcome.limited
    conditions = [
        condition(
            "AbleToScale",
            True,
            "SucceededRescale"
            if applied_replicas != decision.current_replicas
            else "ReadyForNewScale",
            "the target's /scale can be read and written",
        ),
        condition(
            "ScalingActive",
            decision.active,
            "ValidMetricFound" if decision.active else "FailedGetMetrics",
            decision.reason,
        ),
        condition(
            "ScalingLimited",
            limited.limited,
            limited.reason.value if limited.reason else "DesiredWithinRange",
            limited.message,
        ),
    ]
    if decision.idle or (applied_replicas == 0 and decision.current_replicas == 0):
        # minReplicas 0: at zero, idle (the load below activation) or kept there by the GPUs.
        conditions.append(
            condition(
                "Idle",
                decision.idle,
                "ScaledToZero" if decision.idle else "Woken",
                decision.reason if decision.idle else limited.message,
            )
        )
    status: JsonDict = {
        "observedGeneration": generation,
        "currentReplicas": decision.current_replicas,
        "desiredReplicas": limited.desired_replicas,
        "feasibleReplicas": limited.feasible_replicas,
        "appliedReplicas": applied_replicas,
        "metrics": metric_status(metrics, observations, decision.recommendations),
        "conditions": conditions,
    }
    if last_scale_unix_seconds is not None:
        status["lastScaleTime"] = format_time(last_scale_unix_seconds)
    if cold_start is not None:
        status["coldStart"] = cold_start.as_status()
    if schedule is not None:
        status["schedule"] = dict(schedule)
    return status


def metric_status(
    metrics: Sequence[MetricSpec], observations: Observations, recommendations: Mapping[str, int]
) -> list[JsonDict]:
    """Per metric: the value read (a total, or the average over the pods that answered)."""
    out: list[JsonDict] = []
    for metric in metrics:
        entry: JsonDict = {
            "name": metric.name,
            "target": {"type": metric.target.type.value, "value": metric.target.value},
        }
        reading = observations.metrics.get(metric.name)
        if reading is None:
            entry["available"] = False
        elif reading.total is not None:
            entry.update(available=True, total=reading.total)
        elif reading.per_pod:
            values = list(reading.per_pod.values())
            entry.update(
                available=True, average=sum(values) / len(values), podsReporting=len(values)
            )
        else:
            entry["available"] = False
        if metric.name in recommendations:
            entry["recommendedReplicas"] = recommendations[metric.name]
        out.append(entry)
    return out


def blocked_status(
    reason: str, message: str, *, generation: int, previous: Mapping[str, Any]
) -> JsonDict:
    """The status when nothing can be scaled: the replica counts seen last are kept."""
    status: JsonDict = {
        k: v
        for k, v in previous.items()
        if k
        in (
            "currentReplicas",
            "desiredReplicas",
            "feasibleReplicas",
            "appliedReplicas",
            "lastScaleTime",
        )
    }
    status.update(
        observedGeneration=generation,
        conditions=[
            condition("AbleToScale", False, reason, message),
            condition("ScalingActive", False, reason, "nothing is scaled until this is fixed"),
            # The same words here: `kubectl get aiscalers -o wide` shows this condition's message.
            condition("ScalingLimited", False, reason, f"no decision: {message}"),
        ],
    )
    return status


def with_transitions(
    status: JsonDict, previous: Mapping[str, Any], *, now_unix_seconds: float
) -> JsonDict:
    """Each condition keeps its lastTransitionTime unless its status changed."""
    before = {c.get("type"): c for c in previous.get("conditions") or [] if isinstance(c, dict)}
    for cond in status.get("conditions") or []:
        old = before.get(cond["type"])
        if (
            old is not None
            and old.get("status") == cond["status"]
            and old.get("lastTransitionTime")
        ):
            cond["lastTransitionTime"] = old["lastTransitionTime"]
        else:
            cond["lastTransitionTime"] = format_time(now_unix_seconds)
    return status


def event(
    scaler: Mapping[str, Any], *, reason: str, message: str, warning: bool, now_unix_seconds: float
) -> JsonDict:
    """A core/v1 Event about the AIScaler, as `kubectl describe aiscaler` lists it."""
    meta = scaler.get("metadata") or {}
    stamp = format_time(now_unix_seconds)
    return {
        "metadata": {
            "name": f"{meta.get('name')}.{uuid.uuid4().hex[:16]}",
            "namespace": meta.get("namespace"),
        },
        "involvedObject": {
            "apiVersion": names.GROUP_VERSION,
            "kind": names.AISCALER_KIND,
            "namespace": meta.get("namespace"),
            "name": meta.get("name"),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        },
        "reason": reason,
        "message": message[:1024],
        "type": "Warning" if warning else "Normal",
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }
