"""Feasibility: how many more replicas the GPUs can hold now, and the applied replica count.

`feasible_replicas` asks how many more copies of the target's pod template `place_replicas` (the
extender's own accounting, claims and reservations included) could put on the GPUs. It answers
from a headroom.capacity.CapacityIndex: pass one built once per round as `snapshots` (it is a
Sequence of them) and all AIScalers share it; pass plain snapshots and one is built for the call.
`feasible_replicas_by_placement` is the same answer the straightforward way, for tests and benches.
`apply_feasibility` turns a Decision into the count to write: in Enforce mode never more than the
replicas already Ready or placed + the feasible ones + `allowPending`; in Observe mode the desired
count, with the limit still reported. Pure: no client imports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from extender.scaler.decision import Decision, Limit
from extender.scaler.spec import FeasibilityMode, ScalerSpec
from headroom.capacity import CapacityIndex, Copies, copies_by_placement
from headroom.demand import GpuDemand
from headroom.fit import NodeSnapshot, Policy
from headroom.quantity import format_bytes


@dataclass(frozen=True)
class Headroom:
    """How many more replicas fit, and what the next one would run into."""

    more: int
    demand: GpuDemand | None  # None: the template asks for no GPU (never limited)
    best_free_bytes: int = 0  # the most free memory one GPU offers once `more` are placed
    blocked: bool = False  # True when fewer than asked for fit


class LimitReason(StrEnum):
    TOO_FEW = "TooFew"
    TOO_MANY = "TooMany"
    INSUFFICIENT_GPU_HEADROOM = "InsufficientGPUHeadroom"


@dataclass(frozen=True)
class Limited:
    """The outcome for status: the ScalingLimited condition is True when `reason` is set."""

    desired_replicas: int
    feasible_replicas: int  # Ready or placed + the ones that fit now
    applied_replicas: int
    reason: LimitReason | None
    message: str

    @property
    def limited(self) -> bool:
        return self.reason is not None


def feasible_replicas(
    pod_template_demand: GpuDemand | None,
    snapshots: Sequence[NodeSnapshot],
    *,
    now_unix_seconds: float,
    staleness_seconds: float,
    current_placed: int,
    max_replicas: int,
    policy: Policy = Policy.BINPACK,
) -> Headroom:
    """How many replicas beyond the `current_placed` (already in `snapshots` as claims) fit,
    looking no further than `max_replicas` in all. `snapshots` may be a CapacityIndex."""
    wanted = max(0, max_replicas - current_placed)
    if pod_template_demand is None:
        return Headroom(wanted, None)
    index = snapshots if isinstance(snapshots, CapacityIndex) else CapacityIndex(snapshots)
    return _headroom(
        pod_template_demand,
        index.copies(
            pod_template_demand,
            wanted,
            now_unix_seconds=now_unix_seconds,
            staleness_seconds=staleness_seconds,
            policy=policy,
        ),
    )


def feasible_replicas_by_placement(
    pod_template_demand: GpuDemand | None,
    snapshots: Sequence[NodeSnapshot],
    *,
    now_unix_seconds: float,
    staleness_seconds: float,
    current_placed: int,
    max_replicas: int,
    policy: Policy = Policy.BINPACK,
) -> Headroom:
    """`feasible_replicas` by placing the replicas one by one with `place_replicas` (the
    reference: one pass over every node per replica)."""
    wanted = max(0, max_replicas - current_placed)
    if pod_template_demand is None:
        return Headroom(wanted, None)
    return _headroom(
        pod_template_demand,
        copies_by_placement(
            pod_template_demand,
            wanted,
            snapshots,
            now_unix_seconds=now_unix_seconds,
            staleness_seconds=staleness_seconds,
            policy=policy,
        ),
    )


def _headroom(demand: GpuDemand, copies: Copies) -> Headroom:
    return Headroom(copies.count, demand, copies.best_free_bytes, blocked=copies.blocked)


def apply_feasibility(
    decision: Decision, feasible: Headroom, *, ready_or_placed: int, spec: ScalerSpec
) -> Limited:
    """The replica count to write. A decision without usable metrics changes nothing; Enforce
    never goes above ready_or_placed + feasible + allowPending except to honour minReplicas."""
    desired = decision.desired_replicas
    fitting = ready_or_placed + feasible.more
    allow_pending = spec.feasibility.allow_pending
    cap = fitting + allow_pending
    enforce = spec.feasibility.mode is FeasibilityMode.ENFORCE
    if not decision.active:
        applied = decision.current_replicas
    elif enforce:
        applied = max(spec.min_replicas, min(desired, cap))
    else:
        applied = desired
    if desired > cap and feasible.demand is not None:
        return Limited(
            desired,
            fitting,
            applied,
            LimitReason.INSUFFICIENT_GPU_HEADROOM,
            _headroom_message(
                desired,
                feasible,
                fitting=fitting,
                allow_pending=allow_pending,
                enforce=enforce,
                applied=applied,
            ),
        )
    if decision.limit is not None:
        reason = LimitReason.TOO_MANY if decision.limit is Limit.TOO_MANY else LimitReason.TOO_FEW
        return Limited(desired, fitting, applied, reason, decision.reason)
    return Limited(
        desired,
        fitting,
        applied,
        None,
        f"desired {desired} is within the GPUs' headroom ({fitting} fit)",
    )


def _headroom_message(
    desired: int,
    feasible: Headroom,
    *,
    fitting: int,
    allow_pending: int,
    enforce: bool,
    applied: int,
) -> str:
    assert feasible.demand is not None  # checked by the caller
    pending = f" (+{allow_pending} allowed Pending)" if allow_pending else ""
    text = (
        f"wanted {desired}, {fitting} fit{pending}: {desired - fitting} more need "
        f"{feasible.demand.describe()}, largest free {format_bytes(feasible.best_free_bytes)}"
    )
    if not enforce:
        text += f" (Observe mode: applying {applied} anyway)"
    return text
