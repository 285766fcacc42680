"""Cold-start-aware scale-up: the load's trend projected one cold start ahead raises the count,
never lowers it; off unless asked; the spec validated naming the field."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from extender.scaler.anticipate import Anticipation, projected
from extender.scaler.decision import History, MetricObservation, Observations, PodState, decide
from extender.scaler.spec import SpecError, parse_spec

NOW = 1_000_000.0


def spec(cold_start: Any = None) -> Any:
    raw: dict[str, Any] = {
        "deploymentName": "llm",
        "metricType": "queue_depth",
        "targetValue": 10,
        "maxReplicas": 50,
        "behavior": {
            "scaleUp": {"policies": [{"type": "Pods", "value": 100, "periodSeconds": 15}]}
        },
    }
    if cold_start is not None:
        raw["coldStart"] = cold_start
    return parse_spec({"spec": raw})


def at_load(per_pod: float, replicas: int) -> Observations:
    pods = tuple(PodState(f"r{i}", ready=True) for i in range(replicas))
    return Observations(
        replicas, pods, {"queue_depth": MetricObservation(per_pod={p.name: per_pod for p in pods})}
    )


RISING = History(recommendations=((NOW - 60, 4), (NOW - 30, 5)))  # one replica more each 30 s


def test_a_rising_load_is_met_one_cold_start_ahead() -> None:
    # Now the load asks for 6 (4 pods at 15); the line gains 1 per 30 s: 12 in 180 s.
    on = decide(spec({"anticipate": True, "seconds": 180}), at_load(15, 4), RISING, NOW)
    off = decide(spec(), at_load(15, 4), RISING, NOW)
    assert off.desired_replicas == 6
    assert on.desired_replicas == 12
    assert "load rising" in on.reason
    # The history keeps the load's own recommendation, so the trend stays the load's.
    assert on.history.recommendations[-1] == (NOW, 6)


def test_a_falling_or_flat_load_is_not_anticipated() -> None:
    falling = History(recommendations=((NOW - 60, 9), (NOW - 30, 8)))
    policy = spec({"anticipate": True, "seconds": 180})
    assert decide(policy, at_load(15, 4), falling, NOW).desired_replicas == 6
    flat = History(recommendations=((NOW - 60, 6), (NOW - 30, 6)))
    assert decide(policy, at_load(15, 4), flat, NOW).desired_replicas == 6


def test_without_a_cold_start_to_look_ahead_by_nothing_is_anticipated() -> None:
    assert spec({"anticipate": True}).anticipation == Anticipation(True, None, 120)
    decision = decide(spec({"anticipate": True}), at_load(15, 4), RISING, NOW)
    assert decision.desired_replicas == 6


@given(
    st.lists(
        st.tuples(st.floats(min_value=0, max_value=600), st.integers(min_value=0, max_value=80)),
        max_size=20,
    ),
    st.integers(min_value=0, max_value=80),
    st.floats(min_value=0, max_value=600),
)
def test_the_projection_only_ever_raises(
    samples: list[tuple[float, int]], now_count: int, lead: float
) -> None:
    history = History(recommendations=tuple(sorted((NOW - 600 + t, n) for t, n in samples)))
    obs = at_load(now_count, 10)
    plain = decide(spec(), obs, history, NOW)
    ahead = decide(spec({"anticipate": True, "seconds": lead}), obs, history, NOW)
    assert ahead.desired_replicas >= plain.desired_replicas


def test_the_line_is_fitted_to_the_window_only() -> None:
    old_spike = [(NOW - 500, 40), (NOW - 60, 4), (NOW - 30, 5), (NOW, 6)]
    assert projected(old_spike, now_unix_seconds=NOW, window_seconds=120, lead_seconds=60) == 8
    assert projected([(NOW, 6)], now_unix_seconds=NOW, window_seconds=120, lead_seconds=60) is None


@pytest.mark.parametrize(
    ("cold_start", "field"),
    [
        ({"anticipate": "yes"}, "spec.coldStart.anticipate"),
        ({"anticipate": True, "seconds": -1}, "spec.coldStart.seconds"),
        ({"anticipate": True, "seconds": 7200}, "spec.coldStart.seconds"),
        ({"anticipate": True, "trendWindowSeconds": 5}, "spec.coldStart.trendWindowSeconds"),
        ({"anticipate": True, "lead": 5}, "spec.coldStart.lead"),
        ("on", "spec.coldStart"),
    ],
)
def test_a_bad_cold_start_policy_is_refused_naming_the_field(cold_start: Any, field: str) -> None:
    with pytest.raises(SpecError) as raised:
        spec(cold_start)
    assert raised.value.field == field
