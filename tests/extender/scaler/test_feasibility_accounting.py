"""Feasibility end to end: the seed 004 scenario through decide and feasibility, and Enforce over
real accounting on random clusters (evaluate never applies more than fits)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from extender.scaler.decision import History, MetricObservation, Observations, PodState, decide
from extender.scaler.evaluate import evaluate
from extender.scaler.feasibility import (
    Limited,
    LimitReason,
    apply_feasibility,
    feasible_replicas,
    feasible_replicas_by_placement,
)
from extender.scaler.spec import parse_spec
from headroom.capacity import CapacityIndex
from headroom.demand import GpuDemand
from headroom.fit import NodeSnapshot, PodClaim
from tests.extender.scaler.test_feasibility import GI, NOW, node, scaler
from tests.headroom.test_fit_capacity import clusters, demands


def test_seed_004_pure_core_scales_both_ways_and_nothing_blocks() -> None:
    """The seed 004 scenario at the pure level: maxReplicas above what the cluster holds, two
    replicas Pending without an IP, one Ready replica refusing connections (no value)."""
    whole = GpuDemand(gpu_count=1, memory_bytes=40 * GI)
    spec = parse_spec(
        {
            "spec": {
                "deploymentName": "llm",
                "metricType": "queue_depth",
                "targetValue": 10,
                "minReplicas": 1,
                "maxReplicas": 10,
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}},
            }
        }
    )

    def claims(*uids: str) -> tuple[PodClaim, ...]:
        return tuple(PodClaim(uid, whole, (f"GPU-a-{i}",)) for i, uid in enumerate(uids))

    def round_trip(
        obs: Observations, history: History, snapshots: list[NodeSnapshot], placed: int
    ) -> tuple[int, Limited, History]:
        decided = decide(spec, obs, history, NOW)
        room = feasible_replicas(
            whole,
            snapshots,
            now_unix_seconds=NOW,
            staleness_seconds=60,
            current_placed=placed,
            max_replicas=spec.max_replicas,
        )
        limited = apply_feasibility(decided, room, ready_or_placed=placed, spec=spec)
        return decided.desired_replicas, limited, decided.history

    ready = [PodState(n, ready=True) for n in ("r0", "r1", "r2")]
    pending = [PodState(n, ready=False, pending=True) for n in ("p0", "p1")]
    # r1 refuses connections: no value. High load, but Pending replicas: no cascade; Enforce
    # drops the two that cannot be placed.
    obs = Observations(
        5, (*ready, *pending), {"queue_depth": MetricObservation(per_pod={"r0": 30.0, "r2": 30.0})}
    )
    cluster = [node("a", [80, 80, 80], claims=claims("r0", "r1", "r2"))]
    desired, limited, history = round_trip(obs, History(), cluster, placed=3)
    assert (desired, limited.applied_replicas) == (5, 3)
    assert limited.message == "wanted 5, 3 fit: 2 more need 40Gi on 1 GPU, largest free 0"

    # Capacity frees on a new node: the scale-up proceeds to the feasible cap.
    obs = Observations(
        3, tuple(ready), {"queue_depth": MetricObservation(per_pod={"r0": 30.0, "r2": 30.0})}
    )
    cluster.append(node("b", [80, 80]))
    desired, limited, history = round_trip(obs, history, cluster, placed=3)
    assert (desired, limited.applied_replicas, limited.reason) == (
        6,
        5,
        LimitReason.INSUFFICIENT_GPU_HEADROOM,
    )

    # Load falls: the scale-down goes through although r1 still gives no value.
    more_ready = (*ready, PodState("r3", ready=True), PodState("r4", ready=True))
    obs = Observations(
        5,
        more_ready,
        {"queue_depth": MetricObservation(per_pod={"r0": 1.0, "r2": 1.0, "r3": 1.0, "r4": 1.0})},
    )
    desired, limited, _ = round_trip(obs, history, cluster, placed=5)
    assert (desired, limited.applied_replicas, limited.reason) == (2, 2, None)


# -- Enforce over real accounting ------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(
    snapshots=clusters(),
    demand=st.one_of(st.none(), demands),
    current=st.integers(0, 12),
    placed=st.integers(0, 12),
    per_pod=st.lists(st.floats(0, 100), max_size=12),
    allow_pending=st.integers(0, 3),
    min_replicas=st.integers(0, 4),
    max_replicas=st.integers(4, 20),
    observe=st.booleans(),
)
def test_enforce_never_exceeds_the_feasible_count_over_real_accounting(
    *,
    snapshots: list[NodeSnapshot],
    demand: GpuDemand | None,
    current: int,
    placed: int,
    per_pod: list[float],
    allow_pending: int,
    min_replicas: int,
    max_replicas: int,
    observe: bool,
) -> None:
    """The issue's property end to end: evaluate over random clusters never applies more than
    placed + what place_replicas can put on the GPUs + allowPending (minReplicas aside)."""
    spec = scaler(
        mode="Observe" if observe else "Enforce",
        allow_pending=allow_pending,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
    )
    pods = tuple(PodState(f"p{i}", ready=True) for i in range(len(per_pod)))
    observations = Observations(
        current,
        pods,
        {
            "queue_depth": MetricObservation(
                per_pod={p.name: v for p, v in zip(pods, per_pod, strict=True)}
            )
        },
    )
    outcome = evaluate(
        spec,
        observations,
        History(),
        demand=demand,
        snapshots=CapacityIndex(snapshots),
        placed_replicas=placed,
        now_unix_seconds=NOW,
        staleness_seconds=60.0,
    )
    fits = feasible_replicas_by_placement(
        demand,
        snapshots,
        now_unix_seconds=NOW,
        staleness_seconds=60.0,
        current_placed=placed,
        max_replicas=max_replicas,
    )
    assert outcome.headroom == fits
    applied, desired = outcome.applied_replicas, outcome.decision.desired_replicas
    if not outcome.decision.active:
        assert applied == current
    elif observe:
        assert applied == desired
    else:
        assert applied <= max(min_replicas, placed + fits.more + allow_pending)
        assert min_replicas <= applied <= max(min_replicas, desired)
