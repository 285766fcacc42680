"""What the scaler writes and says: status after a round, when blocked, condition transition
times, Events, and how a pod counts (Ready, Pending)."""

from __future__ import annotations

from typing import Any

from extender.scaler.decision import History, MetricObservation, Observations, PodState
from extender.scaler.evaluate import evaluate
from extender.scaler.report import blocked_status, event, round_status, with_transitions
from extender.scaler.spec import parse_spec
from extender.scaler.state import pod_state
from headroom.demand import GpuDemand
from headroom.fit import NodeSnapshot, PodClaim
from headroom.report import NodeReport
from tests.headroom.builders import GI, NOW, gpu

SEED = {
    "metadata": {"name": "llm", "namespace": "ml", "uid": "u1"},
    "spec": {
        "deploymentName": "llm-server",
        "metricType": "queue_depth",
        "targetValue": 10,
        "minReplicas": 1,
        "maxReplicas": 10,
    },
}


def one_node(gpus: int, *, placed: int) -> list[NodeSnapshot]:
    """A node of `gpus` empty GPUs, `placed` of them claimed by the target's bound pods."""
    report = NodeReport(
        node_name="n", reported_at_unix_seconds=NOW, gpus=tuple(gpu(i) for i in range(gpus))
    )
    claims = tuple(PodClaim(f"p{i}", GpuDemand(1, 20 * GI)) for i in range(placed))
    return [NodeSnapshot("n", report, claims)]


def test_a_round_limited_by_gpus_reports_desired_feasible_applied_and_why() -> None:
    spec = parse_spec(SEED)
    pods = tuple(PodState(f"p{i}", ready=True) for i in range(2))
    observations = Observations(
        2, pods, {"queue_depth": MetricObservation(per_pod={"p0": 30.0, "p1": 30.0})}
    )
    outcome = evaluate(
        spec,
        observations,
        History(),
        demand=GpuDemand(1, 20 * GI),
        snapshots=one_node(3, placed=2),
        placed_replicas=2,
        now_unix_seconds=NOW,
        staleness_seconds=90,
    )
    status = round_status(
        outcome,
        observations,
        metrics=spec.metrics,
        applied_replicas=3,
        generation=4,
        last_scale_unix_seconds=NOW,
    )
    assert (
        status["desiredReplicas"],
        status["feasibleReplicas"],
        status["appliedReplicas"],
        status["currentReplicas"],
    ) == (6, 3, 3, 2)
    limited = {c["type"]: c for c in status["conditions"]}["ScalingLimited"]
    assert limited["status"] == "True"
    assert limited["reason"] == "InsufficientGPUHeadroom"
    assert limited["message"] == ("wanted 6, 3 fit: 3 more need 20Gi on 1 GPU, largest free 0")
    assert status["metrics"] == [
        {
            "name": "queue_depth",
            "available": True,
            "average": 30.0,
            "podsReporting": 2,
            "recommendedReplicas": 6,
            "target": {"type": "AverageValue", "value": 10.0},
        }
    ]
    assert status["observedGeneration"] == 4
    assert status["lastScaleTime"] == "2023-11-14T22:13:20Z"


def test_blocked_status_keeps_the_last_counts_and_says_why() -> None:
    previous = {"desiredReplicas": 5, "appliedReplicas": 3, "conditions": []}
    status = blocked_status(
        "FailedGetScale", "Deployment/llm-server: not found", generation=2, previous=previous
    )
    assert status["desiredReplicas"] == 5 and status["appliedReplicas"] == 3
    able = status["conditions"][0]
    assert (able["type"], able["status"], able["reason"]) == (
        "AbleToScale",
        "False",
        "FailedGetScale",
    )


def test_transition_times_move_only_when_a_status_changes() -> None:
    before: dict[str, Any] = {
        "conditions": [
            {
                "type": "ScalingActive",
                "status": "True",
                "lastTransitionTime": "2020-01-01T00:00:00Z",
            },
            {
                "type": "ScalingLimited",
                "status": "False",
                "lastTransitionTime": "2020-01-01T00:00:00Z",
            },
        ]
    }
    after = with_transitions(
        {
            "conditions": [
                {"type": "ScalingActive", "status": "True"},
                {"type": "ScalingLimited", "status": "True"},
            ]
        },
        before,
        now_unix_seconds=NOW,
    )
    times = {c["type"]: c["lastTransitionTime"] for c in after["conditions"]}
    assert times == {
        "ScalingActive": "2020-01-01T00:00:00Z",
        "ScalingLimited": "2023-11-14T22:13:20Z",
    }


def test_an_event_names_the_aiscaler_and_is_cut_to_size() -> None:
    body = event(
        SEED, reason="ScalingLimited", message="x" * 5000, warning=True, now_unix_seconds=NOW
    )
    assert body["involvedObject"]["kind"] == "AIScaler"
    assert body["involvedObject"]["uid"] == "u1"
    assert body["type"] == "Warning" and len(body["message"]) == 1024
    assert body["metadata"]["name"].startswith("llm.")


def test_pods_count_as_ready_only_when_running_with_an_ip() -> None:
    ready = {"type": "Ready", "status": "True"}
    running = {
        "metadata": {"name": "a"},
        "spec": {"nodeName": "n"},
        "status": {"phase": "Running", "podIP": "10.0.0.1", "conditions": [ready]},
    }
    unbound = {"metadata": {"name": "b"}, "spec": {}, "status": {"phase": "Pending"}}
    no_ip = {
        "metadata": {"name": "c"},
        "spec": {"nodeName": "n"},
        "status": {"phase": "Pending", "conditions": [ready]},
    }
    gated = {
        "metadata": {"name": "d"},
        "spec": {"nodeName": "n"},
        "status": {
            "phase": "Running",
            "podIP": "10.0.0.2",
            "conditions": [{"type": "Ready", "status": "False"}],
        },
    }
    assert pod_state(running) == PodState("a", ready=True, pending=False)
    assert pod_state(unbound) == PodState("b", ready=False, pending=True)
    assert pod_state(no_ip) == PodState("c", ready=False, pending=True)
    assert pod_state(gated) == PodState("d", ready=False, pending=False)
