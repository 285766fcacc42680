"""The pure scaling decision: one table row per rule (the properties and several metrics are in
test_decision_properties.py)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from extender.scaler.decision import (
    History,
    Limit,
    MetricObservation,
    Observations,
    PodState,
    decide,
)
from extender.scaler.spec import ScalerSpec, parse_spec

NOW = 1_000_000.0
FAST = {
    "scaleUp": {"policies": [{"type": "Pods", "value": 1000, "periodSeconds": 15}]},
    "scaleDown": {
        "stabilizationWindowSeconds": 0,
        "policies": [{"type": "Pods", "value": 1000, "periodSeconds": 15}],
    },
}
SLOW = {  # one pod a minute either way
    "scaleUp": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]},
    "scaleDown": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]},
}


def spec(
    *,
    min_replicas: int = 1,
    max_replicas: int = 100,
    behavior: Any = None,
    metrics: list[dict[str, Any]] | None = None,
) -> ScalerSpec:
    raw: dict[str, Any] = {
        "deploymentName": "llm",
        "minReplicas": min_replicas,
        "maxReplicas": max_replicas,
        "behavior": FAST if behavior is None else behavior,
    }
    if metrics is None:
        raw.update(metricType="queue_depth", targetValue=10)
    else:
        raw["metrics"] = metrics
    return parse_spec({"spec": raw})


PROM_VALUE = [
    {"type": "prometheus", "name": "total", "query": "q", "target": {"type": "Value", "value": 10}}
]
PROM_AVERAGE = [
    {
        "type": "prometheus",
        "name": "total",
        "query": "q",
        "target": {"type": "AverageValue", "averageValue": 10},
    }
]


def pods_obs(
    values: Sequence[float | None],
    *,
    unready: int = 0,
    pending: int = 0,
    current: int | None = None,
    unready_value: float = 100.0,
) -> Observations:
    """Ready pods with these queue depths (None: the scrape failed), then unready and pending."""
    pods = [PodState(f"r{i}", ready=True) for i in range(len(values))]
    pods += [PodState(f"u{i}", ready=False) for i in range(unready)]
    pods += [PodState(f"p{i}", ready=False, pending=True) for i in range(pending)]
    per_pod = {f"r{i}": v for i, v in enumerate(values) if v is not None}
    per_pod.update({f"u{i}": unready_value for i in range(unready)})  # ignored: not Ready
    return Observations(
        len(pods) if current is None else current,
        tuple(pods),
        {"queue_depth": MetricObservation(per_pod=per_pod)},
    )


def total_obs(total: float | None, *, current: int, ready: int | None = None) -> Observations:
    ready = current if ready is None else ready
    pods = tuple(PodState(f"r{i}", ready=i < ready) for i in range(current))
    return Observations(current, pods, {"total": MetricObservation(total=total)})


@dataclass
class Row:
    name: str
    obs: Observations
    desired: int
    spec: ScalerSpec = field(default_factory=spec)
    history: History = field(default_factory=History)
    active: bool = True
    limit: Limit | None = None
    words: str = ""


ROWS = [
    Row("average: HPA's ratio over Ready pods", pods_obs([30, 30]), 6),
    Row("average: within tolerance keeps current", pods_obs([10.9, 10.9, 10.9]), 3),
    Row("average: just outside tolerance moves", pods_obs([11.2, 11.2, 11.2]), 4),
    Row("average: scale down", pods_obs([2, 2, 2, 2]), 1),
    Row(
        "AverageValue: ceil(total / averageValue)",
        total_obs(95, current=3),
        10,
        spec(metrics=PROM_AVERAGE),
    ),
    Row(
        "AverageValue: within tolerance of the current replicas keeps them",
        total_obs(31, current=3),
        3,
        spec(metrics=PROM_AVERAGE),
    ),
    Row(
        "AverageValue: the total over every replica, Ready or not (HPA's External)",
        total_obs(95, current=4, ready=2),
        10,
        spec(metrics=PROM_AVERAGE),
    ),
    Row(
        "Value: HPA's External Value, ceil(ready * total / value)",
        total_obs(30, current=3, ready=2),
        6,
        spec(metrics=PROM_VALUE),
        words="30 against 10 with 2 Ready pods",
    ),
    Row(
        "Value: a ratio of exactly 1.1 holds",
        total_obs(11, current=2),
        2,
        spec(metrics=PROM_VALUE),
    ),
    Row(
        "Value: from zero replicas, ceil(total / value)",
        total_obs(25, current=0),
        3,
        spec(min_replicas=0, metrics=PROM_VALUE),
    ),
    Row("tolerance: an average ratio of exactly 1.1 holds", pods_obs([11, 11]), 2),
    Row("tolerance: an average ratio of exactly 0.9 holds", pods_obs([9, 9]), 2),
    Row(
        "tolerance: a total ratio of exactly 1.1 holds",
        total_obs(22, current=2),
        2,
        spec(metrics=PROM_AVERAGE),
    ),
    Row(
        "tolerance: a total ratio of exactly 0.9 holds",
        total_obs(18, current=2),
        2,
        spec(metrics=PROM_AVERAGE),
    ),
    Row(
        "bounds: above a lowered maxReplicas while no metric can be read",
        total_obs(None, current=10),
        8,
        spec(max_replicas=8, metrics=PROM_AVERAGE),
        limit=Limit.TOO_MANY,
        words="above maxReplicas 8",
    ),
    Row(
        "bounds: below a raised minReplicas while no metric can be read",
        Observations(2, (PodState("r0", ready=True), PodState("r1", ready=True)), {}),
        4,
        spec(min_replicas=4, metrics=PROM_AVERAGE),
        limit=Limit.TOO_FEW,
        words="below minReplicas 4",
    ),
    Row(
        "bounds: applied at once, past the rate policies",
        total_obs(200, current=30),
        8,
        spec(max_replicas=8, metrics=PROM_AVERAGE, behavior=SLOW),
        limit=Limit.TOO_MANY,
    ),
    Row(
        "unready pods are left out of the average",
        pods_obs([12, 12, 12, 12], unready=1),
        5,
        words="average 12 over 4 Ready pods",
    ),
    Row(
        "unready pods count as capacity on a scale-up",
        pods_obs([12, 12], unready=2),
        4,
        words="unready pods",
    ),
    Row("missing pods count as at target on a scale-down", pods_obs([2, 2, None]), 2),
    Row(
        "missing pods count as zero on a scale-up: no flip into a scale-down",
        pods_obs([14, 14, None, None]),
        4,
        words="flip",
    ),
    Row("missing pods on a scale-up still scale up", pods_obs([40, 40, None]), 8),
    Row(
        "metric source down: no change",
        Observations(3, (), {}),
        3,
        active=False,
        words="metric queue_depth: no data (metric source unavailable); holding 3 replicas",
    ),
    Row(
        "metric source down: no change within the bounds",
        Observations(4, (), {}),
        4,
        spec(max_replicas=5),
        active=False,
    ),
    Row(
        "prometheus empty result is missing, not zero",
        total_obs(None, current=3),
        3,
        spec(metrics=PROM_VALUE),
        active=False,
        words="empty or NaN",
    ),
    Row(
        "prometheus NaN is missing, not zero",
        total_obs(math.nan, current=3),
        3,
        spec(metrics=PROM_VALUE),
        active=False,
    ),
    Row(
        "no Ready pod answered: no change",
        pods_obs([None, None]),
        2,
        active=False,
        words="no value from any Ready pod",
    ),
    Row(
        "AverageValue needs no Ready pod (HPA's External: the total over the replicas)",
        total_obs(50, current=2, ready=0),
        5,
        spec(metrics=PROM_AVERAGE),
    ),
    Row(
        "Value with no Ready pod holds (HPA would multiply by 0: a deliberate difference)",
        total_obs(50, current=2, ready=0),
        2,
        spec(metrics=PROM_VALUE),
        active=False,
        words="no Ready pod",
    ),
    Row(
        "no scale-up while replicas are Pending",
        pods_obs([30, 30], pending=1),
        3,
        words="1 Pending replica: no scale-up until they run",
    ),
    Row("replicas without pods yet count as Pending", pods_obs([30, 30], current=3), 3),
    Row("scale-down still happens while Pending", pods_obs([1, 1, 1], pending=1), 1),
    Row("max caps: TooMany", pods_obs([500, 500]), 20, spec(max_replicas=20), limit=Limit.TOO_MANY),
    Row("min raises: TooFew", pods_obs([0, 0, 0]), 2, spec(min_replicas=2), limit=Limit.TOO_FEW),
    Row(
        "target scaled to zero: autoscaling off",
        Observations(0, (), {}),
        0,
        active=False,
        words="scaled to 0",
    ),
    Row(
        "scale-down stabilisation holds the window's highest (never above current)",
        pods_obs([1, 1, 1, 1, 1, 1]),
        6,
        spec(behavior={}),
        History(recommendations=((NOW - 100, 8),)),
        words="stabilised to 6",
    ),
    Row(
        "scale-down stabilisation: the window's highest below current",
        pods_obs([1, 1, 1, 1, 1, 1]),
        4,
        spec(behavior={}),
        History(recommendations=((NOW - 200, 4), (NOW - 100, 2))),
    ),
    Row(
        "scale-down after the window",
        pods_obs([1, 1, 1, 1, 1, 1]),
        1,
        spec(behavior={}),
        History(recommendations=((NOW - 300, 8),)),
    ),
    Row(
        "scale-up stabilisation holds the window's lowest",
        pods_obs([30, 30, 30]),
        3,
        spec(behavior={"scaleUp": {"stabilizationWindowSeconds": 60}}),
        History(recommendations=((NOW - 30, 3),)),
        words="stabilised to 3",
    ),
    Row(
        "default scale-up: the larger of +100% and +4 pods",
        pods_obs([100, 100]),
        6,
        spec(behavior={}),
        words="rate policy allows 6",
    ),
    Row(
        "scale-up selectPolicy Min",
        pods_obs([100, 100]),
        4,
        spec(behavior={"scaleUp": {"selectPolicy": "Min"}}),
    ),
    Row(
        "scale-up Disabled",
        pods_obs([100, 100]),
        2,
        spec(behavior={"scaleUp": {"selectPolicy": "Disabled"}}),
    ),
    Row(
        "scale-up within a period counts earlier changes",
        pods_obs([100] * 6),
        6,
        spec(behavior={}),
        History(scale_events=((NOW - 5, 4),)),
    ),
    Row(
        "scale-up after the period",
        pods_obs([100] * 6),
        12,
        spec(behavior={}),
        History(scale_events=((NOW - 15, 4),)),
    ),
    Row(
        "scale-down Pods policy",
        pods_obs([1] * 5),
        4,
        spec(
            behavior={
                "scaleDown": {
                    "stabilizationWindowSeconds": 0,
                    "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
                }
            }
        ),
    ),
    Row(
        "scale-down Pods policy counts earlier removals",
        pods_obs([1] * 4),
        4,
        spec(
            behavior={
                "scaleDown": {
                    "stabilizationWindowSeconds": 0,
                    "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
                }
            }
        ),
        History(scale_events=((NOW - 30, -1),)),
    ),
    Row(
        "scale-down Percent policy rounds down",
        pods_obs([1] * 5),
        2,
        spec(
            behavior={
                "scaleDown": {
                    "stabilizationWindowSeconds": 0,
                    "policies": [{"type": "Percent", "value": 50, "periodSeconds": 60}],
                }
            }
        ),
    ),
    Row(
        "scale-down Disabled",
        pods_obs([1] * 5),
        5,
        spec(behavior={"scaleDown": {"selectPolicy": "Disabled"}}),
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_decision_table(row: Row) -> None:
    decision = decide(row.spec, row.obs, row.history, NOW)
    assert (decision.desired_replicas, decision.active, decision.limit) == (
        row.desired,
        row.active,
        row.limit,
    ), decision.reason
    assert row.words in decision.reason
    assert decision.current_replicas == row.obs.current_replicas
