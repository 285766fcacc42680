"""Feasibility: how many more replicas fit (headroom.fit's accounting), the applied count, and the
fast path against placing one replica at a time (the seed 004 scenario and Enforce over real
accounting are in test_feasibility_accounting.py)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from extender.scaler.decision import Decision, History, Limit
from extender.scaler.feasibility import (
    Headroom,
    LimitReason,
    apply_feasibility,
    feasible_replicas,
    feasible_replicas_by_placement,
)
from extender.scaler.spec import ScalerSpec, parse_spec
from headroom.capacity import CapacityIndex
from headroom.demand import GpuDemand
from headroom.fit import NodeSnapshot, PodClaim, Policy
from headroom.report import GpuState, NodeReport
from tests.headroom.test_fit_capacity import clusters, demands

GI = 2**30
NOW = 1_700_000_000.0
SHARED_20 = GpuDemand(gpu_count=1, memory_bytes=20 * GI, shared=True)


def node(
    name: str, totals_gi: list[int], *, age_seconds: float = 1, claims: tuple[PodClaim, ...] = ()
) -> NodeSnapshot:
    gpus = tuple(
        GpuState(index=i, uuid=f"GPU-{name}-{i}", model="m", total_bytes=t * GI, used_bytes=0)
        for i, t in enumerate(totals_gi)
    )
    return NodeSnapshot(name, NodeReport(name, NOW - age_seconds, gpus), claims)


def scaler(
    *, mode: str = "Enforce", allow_pending: int = 0, min_replicas: int = 1, max_replicas: int = 10
) -> ScalerSpec:
    raw: dict[str, Any] = {
        "deploymentName": "llm",
        "metricType": "queue_depth",
        "targetValue": 10,
        "minReplicas": min_replicas,
        "maxReplicas": max_replicas,
        "feasibility": {"mode": mode, "allowPending": allow_pending},
    }
    if min_replicas == 0:  # needs a metric that does not come from the pods
        del raw["metricType"], raw["targetValue"]
        raw["metrics"] = [
            {"type": "queue_depth", "name": "queue_depth", "targetValue": 10},
            {
                "type": "prometheus",
                "name": "router",
                "query": "sum(router_queue)",
                "target": {"type": "AverageValue", "averageValue": 10},
            },
        ]
    return parse_spec({"spec": raw})


def decision(
    desired: int, current: int, *, active: bool = True, limit: Limit | None = None
) -> Decision:
    return Decision(desired, current, "the metrics' words", History(), active=active, limit=limit)


def more(
    snapshots: list[NodeSnapshot],
    *,
    placed: int = 0,
    max_replicas: int = 10,
    demand: GpuDemand | None = SHARED_20,
) -> Headroom:
    return feasible_replicas(
        demand,
        snapshots,
        now_unix_seconds=NOW,
        staleness_seconds=60,
        current_placed=placed,
        max_replicas=max_replicas,
    )


def test_counts_the_replicas_place_can_put_on_current_headroom() -> None:
    found = more([node("a", [48, 48]), node("b", [32])])
    # two 20Gi on each 48Gi GPU, one on the 32Gi GPU; then 12Gi is the largest hole left
    assert found == Headroom(5, SHARED_20, 12 * GI, blocked=True)


def test_claims_and_reservations_take_their_share() -> None:
    claim = PodClaim("bound-not-reported", SHARED_20, ("GPU-a-0",))
    assert more([node("a", [48], claims=(claim,))]).more == 1


def test_stale_reports_hold_nothing() -> None:
    found = more([node("a", [80], age_seconds=120)])
    assert (found.more, found.blocked, found.best_free_bytes) == (0, True, 0)


def test_never_looks_past_max_replicas() -> None:
    found = more([node("a", [80, 80, 80])], placed=7, max_replicas=10)
    assert found == Headroom(3, SHARED_20, 0, blocked=False)
    assert more([node("a", [80])], placed=12, max_replicas=10).more == 0


def test_a_template_without_gpus_is_never_limited() -> None:
    assert more([], placed=2, max_replicas=10, demand=None) == Headroom(8, None)


def test_whole_gpu_demand() -> None:
    whole = GpuDemand(gpu_count=2)
    assert more([node("a", [16, 16, 16]), node("b", [16, 16])], demand=whole).more == 2


def blocked(count: int, best_free_gi: float = 12) -> Headroom:
    return Headroom(count, SHARED_20, int(best_free_gi * GI), blocked=True)


def test_enforce_caps_at_what_fits_with_the_numbers() -> None:
    limited = apply_feasibility(decision(8, 5), blocked(0), ready_or_placed=5, spec=scaler())
    assert (limited.applied_replicas, limited.feasible_replicas, limited.reason) == (
        5,
        5,
        LimitReason.INSUFFICIENT_GPU_HEADROOM,
    )
    assert limited.message == "wanted 8, 5 fit: 3 more need 20Gi on 1 GPU, largest free 12Gi"
    assert limited.limited


def test_enforce_uses_the_feasible_ones_and_allow_pending() -> None:
    limited = apply_feasibility(
        decision(8, 3), blocked(2), ready_or_placed=3, spec=scaler(allow_pending=1)
    )
    assert limited.applied_replicas == 6
    assert limited.message == (
        "wanted 8, 5 fit (+1 allowed Pending): 3 more need 20Gi on 1 GPU, largest free 12Gi"
    )


def test_enforce_removes_replicas_that_cannot_be_placed() -> None:
    # 6 replicas exist, 4 are placed and nothing else fits: the 2 Pending ones go.
    limited = apply_feasibility(decision(6, 6), blocked(0), ready_or_placed=4, spec=scaler())
    assert limited.applied_replicas == 4


def test_observe_applies_the_desired_count_and_still_reports_the_limit() -> None:
    limited = apply_feasibility(
        decision(8, 5), blocked(0), ready_or_placed=5, spec=scaler(mode="Observe")
    )
    assert (limited.applied_replicas, limited.reason) == (8, LimitReason.INSUFFICIENT_GPU_HEADROOM)
    assert limited.message.endswith("(Observe mode: applying 8 anyway)")


def test_within_headroom_is_not_limited() -> None:
    limited = apply_feasibility(decision(4, 3), blocked(1), ready_or_placed=3, spec=scaler())
    assert (limited.applied_replicas, limited.reason) == (4, None)
    assert not limited.limited


def test_min_max_limits_come_from_the_decision() -> None:
    for limit, reason in (
        (Limit.TOO_MANY, LimitReason.TOO_MANY),
        (Limit.TOO_FEW, LimitReason.TOO_FEW),
    ):
        limited = apply_feasibility(
            decision(3, 3, limit=limit), blocked(5), ready_or_placed=3, spec=scaler()
        )
        assert (limited.applied_replicas, limited.reason, limited.message) == (
            3,
            reason,
            "the metrics' words",
        )


def test_a_decision_without_data_changes_nothing_even_in_enforce() -> None:
    limited = apply_feasibility(
        decision(7, 7, active=False), blocked(0), ready_or_placed=2, spec=scaler()
    )
    assert limited.applied_replicas == 7


def test_min_replicas_wins_over_the_cap() -> None:
    limited = apply_feasibility(
        decision(3, 3), blocked(0), ready_or_placed=1, spec=scaler(min_replicas=3)
    )
    assert limited.applied_replicas == 3
    assert limited.reason is LimitReason.INSUFFICIENT_GPU_HEADROOM


def test_end_to_end_numbers_from_the_accounting() -> None:
    snapshots = [node("a", [48, 32])]
    found = more(snapshots, placed=0)
    limited = apply_feasibility(decision(5, 1), found, ready_or_placed=0, spec=scaler())
    assert limited.message == "wanted 5, 3 fit: 2 more need 20Gi on 1 GPU, largest free 12Gi"
    assert limited.applied_replicas == 3


@given(
    desired=st.integers(0, 40),
    current=st.integers(0, 40),
    placed=st.integers(0, 40),
    feasible=st.integers(0, 20),
    allow_pending=st.integers(0, 3),
    min_replicas=st.integers(0, 5),
    observe=st.booleans(),
)
def test_enforce_never_exceeds_the_feasible_count(
    *,
    desired: int,
    current: int,
    placed: int,
    feasible: int,
    allow_pending: int,
    min_replicas: int,
    observe: bool,
) -> None:
    spec = scaler(
        mode="Observe" if observe else "Enforce",
        allow_pending=allow_pending,
        min_replicas=min_replicas,
        max_replicas=max(min_replicas, 1, desired),
    )
    limited = apply_feasibility(
        decision(desired, current), blocked(feasible), ready_or_placed=placed, spec=spec
    )
    cap = placed + feasible + allow_pending
    if observe:
        assert limited.applied_replicas == desired
    else:
        assert limited.applied_replicas <= max(min_replicas, cap)
        assert limited.applied_replicas <= max(min_replicas, desired)
    assert (limited.reason is LimitReason.INSUFFICIENT_GPU_HEADROOM) == (desired > cap)


# -- the fast path against place_replicas ----------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(
    clusters(),
    st.lists(st.one_of(st.none(), demands), min_size=1, max_size=4),
    st.integers(0, 12),
    st.integers(0, 25),
    st.sampled_from(list(Policy)),
)
def test_feasible_replicas_answers_as_placing_one_by_one(
    snapshots: list[NodeSnapshot],
    templates: list[GpuDemand | None],
    placed: int,
    max_replicas: int,
    policy: Policy,
) -> None:
    shared_index = CapacityIndex(snapshots)  # one per round, shared by every AIScaler
    for demand in templates:
        answers = [
            ask(
                demand,
                given_snapshots,
                now_unix_seconds=NOW,
                staleness_seconds=60.0,
                current_placed=placed,
                max_replicas=max_replicas,
                policy=policy,
            )
            for ask, given_snapshots in (
                (feasible_replicas_by_placement, snapshots),
                (feasible_replicas, snapshots),
                (feasible_replicas, shared_index),
            )
        ]
        assert answers[1] == answers[0]
        assert answers[2] == answers[0]
