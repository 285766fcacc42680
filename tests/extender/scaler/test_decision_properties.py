"""The pure scaling decision over several metrics, the history it keeps, and hypothesis
properties: never outside min/max, and missing data never scales down."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from extender.scaler.decision import Decision, History, MetricObservation, Observations, decide
from extender.scaler.spec import ScalerSpec
from tests.extender.scaler.test_decision import FAST, NOW, pods_obs, spec

TWO_METRICS: list[dict[str, Any]] = [
    {"type": "queue_depth", "name": "queue_depth", "targetValue": 10},
    {
        "type": "prometheus",
        "name": "total",
        "query": "q",
        "target": {"type": "AverageValue", "averageValue": 10},
    },
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


def test_one_metric_down_among_several_scales_up_on_the_others_never_down() -> None:
    """HPA's rule for invalid metrics: the valid ones may scale up, never down."""
    up = decide(spec(metrics=TWO_METRICS), two([90, 90], None), History(), NOW)
    assert (up.desired_replicas, up.active) == (18, True)
    assert "metric total" in up.reason
    down = decide(spec(metrics=TWO_METRICS), two([2, 2], None), History(), NOW)
    assert (down.desired_replicas, down.active) == (2, False)
    assert "metric total" in down.reason


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
    # minReplicas 0 needs a metric that does not come from the pods (the Prometheus total).
    metric_specs = draw(
        st.sampled_from([QUEUE_ONLY, TWO_METRICS] if min_replicas else [TWO_METRICS])
    )
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
    current = obs.current_replicas
    inside = scaler.min_replicas <= current <= scaler.max_replicas
    if decision.active:
        assert scaler.min_replicas <= decision.desired_replicas <= scaler.max_replicas
    else:
        assert decision.desired_replicas == current
    if _source_down(scaler, obs):
        # HPA's bounds hold whatever the metrics: outside them, the target is brought in
        # (except at 0 replicas, HPA's "autoscaling off"); inside, a missing metric never lets
        # the others scale down.
        off = current == 0 and scaler.min_replicas > 0
        bounded = current if off else min(max(current, scaler.min_replicas), scaler.max_replicas)
        if off or not inside:
            assert decision.desired_replicas == bounded
        else:
            assert decision.desired_replicas >= current


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
        current = obs.current_replicas
        off = current == 0 and scaler.min_replicas > 0
        bounded = current if off else min(max(current, scaler.min_replicas), scaler.max_replicas)
        assert decision.desired_replicas >= min(current, bounded)
        return
    complete = decide(scaler, _filled_at_target(obs), history, NOW)
    if complete.active:
        assert decision.desired_replicas >= min(
            complete.desired_replicas,
            obs.current_replicas,
            # min/max still bound both
            scaler.max_replicas,
        )
