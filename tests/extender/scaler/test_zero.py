"""Zero to N: minReplicas 0 idles at zero below the activation threshold, wakes above it, goes
back to zero only after idleSeconds below it, and a first replica that fits nowhere keeps the
target at zero with the reason in status."""

from __future__ import annotations

from typing import Any

import pytest

from extender.scaler.decision import History, MetricObservation, Observations, PodState, decide
from extender.scaler.evaluate import ScalingOutcome
from extender.scaler.feasibility import Headroom, apply_feasibility
from extender.scaler.report import round_status
from extender.scaler.spec import SpecError, parse_spec
from headroom.demand import GpuDemand

NOW = 1_000_000.0
GI = 2**30


def spec(**zero: Any) -> Any:
    raw: dict[str, Any] = {
        "scaleTargetRef": {"kind": "Deployment", "name": "llm"},
        "minReplicas": 0,
        "maxReplicas": 10,
        "metrics": [
            {
                "type": "prometheus",
                "name": "router",
                "query": "sum(router_queue)",
                "target": {"type": "AverageValue", "averageValue": 10},
            }
        ],
        "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}},
    }
    if zero:
        raw["scaleToZero"] = zero
    return parse_spec({"spec": raw})


def obs(queue: float, replicas: int) -> Observations:
    pods = tuple(PodState(f"p{i}", ready=True) for i in range(replicas))
    return Observations(replicas, pods, {"router": MetricObservation(total=queue)})


def test_at_zero_it_idles_below_the_threshold_and_wakes_above_it() -> None:
    policy = spec(activationThreshold=2)
    idle = decide(policy, obs(2, 0), History(), NOW)
    assert (idle.desired_replicas, idle.idle) == (0, True)
    assert "idle at zero: queue 2 at or below activationThreshold 2" in idle.reason
    woken = decide(policy, obs(3, 0), History(), NOW)
    assert (woken.desired_replicas, woken.idle) == (1, False)
    assert decide(policy, obs(25, 0), History(), NOW).desired_replicas == 3


def test_it_goes_to_zero_only_after_the_idle_period() -> None:
    policy = spec(idleSeconds=60)
    woke = decide(policy, obs(5, 1), History(), NOW)  # a fresh history counts as woken now
    history = woke.history
    assert history.last_active_unix_seconds == NOW
    quiet = decide(policy, obs(0, 1), history, NOW + 30)
    assert quiet.desired_replicas == 1
    gone = decide(policy, obs(0, 1), quiet.history, NOW + 61)
    assert (gone.desired_replicas, gone.idle) == (0, True)


def test_a_first_replica_that_fits_nowhere_keeps_it_at_zero_and_says_so() -> None:
    policy = spec()
    woken = decide(policy, obs(5, 0), History(), NOW)
    nowhere = Headroom(0, GpuDemand(1, 200 * GI), best_free_bytes=80 * GI, blocked=True)
    limited = apply_feasibility(woken, nowhere, ready_or_placed=0, spec=policy)
    assert limited.applied_replicas == 0
    status = round_status(
        ScalingOutcome(woken, nowhere, limited),
        obs(5, 0),
        metrics=policy.metrics,
        applied_replicas=0,
        generation=1,
        last_scale_unix_seconds=None,
    )
    idle = next(c for c in status["conditions"] if c["type"] == "Idle")
    assert (idle["status"], idle["reason"]) == ("False", "Woken")
    assert "0 fit" in idle["message"], idle


def test_minreplicas_0_needs_a_metric_that_is_not_the_pods() -> None:
    with pytest.raises(SpecError) as raised:
        parse_spec(
            {
                "spec": {
                    "deploymentName": "llm",
                    "metricType": "queue_depth",
                    "targetValue": 10,
                    "minReplicas": 0,
                    "maxReplicas": 4,
                }
            }
        )
    assert raised.value.field == "spec.minReplicas"
    assert "does not come from the pods" in str(raised.value)


@pytest.mark.parametrize(
    ("zero", "field"),
    [
        ({"activationThreshold": -1}, "spec.scaleToZero.activationThreshold"),
        ({"idleSeconds": -5}, "spec.scaleToZero.idleSeconds"),
        ({"idle": 5}, "spec.scaleToZero.idle"),
    ],
)
def test_a_bad_scale_to_zero_is_refused_naming_the_field(zero: Any, field: str) -> None:
    with pytest.raises(SpecError) as raised:
        spec(**zero)
    assert raised.value.field == field
