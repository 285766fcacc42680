"""The pure scaling decision: one table row per rule, then hypothesis properties."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from extender.scaler.decision import (
    Decision,
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
    Row("total: ceil(total / target)", total_obs(95, current=3), 10, spec(metrics=PROM_VALUE)),
    Row(
        "total: within tolerance keeps current",
        total_obs(31, current=3),
        3,
        spec(metrics=PROM_VALUE),
    ),
    Row(
        "total averaged over Ready replicas",
        total_obs(95, current=4, ready=2),
        10,
        spec(metrics=PROM_AVERAGE),
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
        "metric source down: no change even above max",
        Observations(7, (), {}),
        7,
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
        "average with no Ready pod: no change",
        total_obs(50, current=2, ready=0),
        2,
        spec(metrics=PROM_AVERAGE),
        active=False,
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


TWO_METRICS: list[dict[str, Any]] = [
    {"type": "queue_depth", "name": "queue_depth", "targetValue": 10},
    {"type": "prometheus", "name": "total", "query": "q", "target": {"type": "Value", "value": 10}},
]


def two(queue: list[float], total: float | None) -> Observations:
    obs = pods_obs(queue)
    metrics = dict(obs.metrics)
    if total is not None:
        metrics["total"] = MetricObservation(total=total)
    return Observations(obs.current_replicas, obs.pods, metrics)


def test_several_metrics_the_highest_recommendation_wins() -> None:
    scaler = spec(metrics=TWO_METRICS)
    decision = decide(scaler, two([30, 30], 150), History(), NOW)
    assert decision.recommendations == {"queue_depth": 6, "total": 15}
    assert decision.desired_replicas == 15
    assert decide(scaler, two([90, 90], 40), History(), NOW).desired_replicas == 18


def test_one_metric_down_among_several_changes_nothing() -> None:
    decision = decide(spec(metrics=TWO_METRICS), two([90, 90], None), History(), NOW)
    assert (decision.desired_replicas, decision.active) == (2, False)
    assert "metric total" in decision.reason


def test_history_records_the_raw_recommendation_and_forgets_old_entries() -> None:
    scaler = spec(behavior={})  # scale-down window 300 s, policy periods 15 s
    old = History(
        recommendations=((NOW - 400, 9), (NOW - 10, 2)), scale_events=((NOW - 20, 1), (NOW - 5, 1))
    )
    decision = decide(scaler, pods_obs([30, 30]), old, NOW)
    assert decision.history.recommendations == ((NOW - 10, 2), (NOW, 6))
    assert decision.history.scale_events == ((NOW - 5, 1),)


def test_a_decision_without_data_keeps_the_history() -> None:
    history = History(recommendations=((NOW - 10, 4),))
    assert decide(spec(), Observations(3, (), {}), history, NOW).history is history


def test_with_scale_records_changes_only() -> None:
    history = History()
    assert history.with_scale(now_unix_seconds=NOW, from_replicas=3, to_replicas=3) is history
    assert history.with_scale(
        now_unix_seconds=NOW, from_replicas=3, to_replicas=1
    ).scale_events == ((NOW, -2),)


# -- properties --------------------------------------------------------------------------------
VALUES = st.one_of(
    st.none(),
    st.floats(min_value=0, max_value=30, allow_nan=False),
    st.floats(min_value=0, max_value=1000, allow_nan=False),
)
QUEUE_ONLY: list[dict[str, Any]] = TWO_METRICS[:1]


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[ScalerSpec, Observations, History]:
    min_replicas = draw(st.integers(0, 10))
    max_replicas = draw(st.integers(max(1, min_replicas), 30))
    behavior = draw(
        st.sampled_from(
            [
                FAST,
                {},
                {"scaleUp": {"selectPolicy": "Min"}, "scaleDown": {"selectPolicy": "Disabled"}},
            ]
        )
    )
    metric_specs = draw(st.sampled_from([QUEUE_ONLY, TWO_METRICS]))
    scaler = spec(
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        behavior=behavior,
        metrics=metric_specs,
    )
    values = draw(st.lists(VALUES, max_size=12))
    obs = pods_obs(
        values,
        unready=draw(st.integers(0, 3)),
        pending=draw(st.integers(0, 2)),
        current=draw(st.one_of(st.none(), st.integers(0, 40))),
    )
    metrics = dict(obs.metrics)
    if len(metric_specs) == 2:
        total = draw(st.one_of(st.floats(min_value=0, max_value=200, allow_nan=False), st.none()))
        if total is not None:  # None: that source is down
            metrics["total"] = MetricObservation(total=total)
    if draw(st.integers(0, 5)) == 0:
        del metrics["queue_depth"]  # the pods' source down
    history = History(
        recommendations=tuple(
            (NOW - a, r)
            for a, r in draw(
                st.lists(st.tuples(st.integers(1, 400), st.integers(0, 40)), max_size=5)
            )
        ),
        scale_events=tuple(
            (NOW - a, c)
            for a, c in draw(
                st.lists(st.tuples(st.integers(1, 30), st.integers(-5, 5).filter(bool)), max_size=3)
            )
        ),
    )
    return scaler, Observations(obs.current_replicas, obs.pods, metrics), history


def _source_down(scaler: ScalerSpec, obs: Observations) -> bool:
    return any(m.name not in obs.metrics for m in scaler.metrics)


@given(scenarios())
def test_never_outside_min_max_and_no_data_changes_nothing(
    case: tuple[ScalerSpec, Observations, History],
) -> None:
    scaler, obs, history = case
    decision = decide(scaler, obs, history, NOW)
    if decision.active:
        assert scaler.min_replicas <= decision.desired_replicas <= scaler.max_replicas
    else:
        assert decision.desired_replicas == obs.current_replicas
    if _source_down(scaler, obs):
        assert not decision.active


def _filled_at_target(obs: Observations) -> Observations:
    reading = obs.metrics["queue_depth"]
    per_pod = dict(reading.per_pod)
    for pod in obs.pods:
        if pod.ready and not pod.pending and pod.name not in per_pod:
            per_pod[pod.name] = 10.0  # exactly the target
    metrics = {**obs.metrics, "queue_depth": MetricObservation(per_pod=per_pod)}
    return Observations(obs.current_replicas, obs.pods, metrics)


@given(scenarios())
def test_missing_data_never_scales_down(case: tuple[ScalerSpec, Observations, History]) -> None:
    """A pod without a value never pulls the decision below what it would be had it reported
    exactly the target (or below the current count), and a source down changes nothing."""
    scaler, obs, history = case
    decision: Decision = decide(scaler, obs, history, NOW)
    if _source_down(scaler, obs):
        assert decision.desired_replicas == obs.current_replicas
        return
    complete = decide(scaler, _filled_at_target(obs), history, NOW)
    if complete.active:
        assert decision.desired_replicas >= min(
            complete.desired_replicas,
            obs.current_replicas,
            # min/max still bound both
            scaler.max_replicas,
        )
