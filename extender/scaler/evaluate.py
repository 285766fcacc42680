"""One AIScaler's round, without the cluster: decide, then tighten to what the GPUs can hold.

`evaluate` is what the controller runs for each AIScaler once it has read the target's replicas,
pods and metrics; `bench/scaler.py` times it over a large cluster view. Pure: no client imports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from extender.scaler.decision import Decision, History, Observations, decide
from extender.scaler.feasibility import Headroom, Limited, apply_feasibility, feasible_replicas
from extender.scaler.spec import ScalerSpec
from headroom.demand import GpuDemand
from headroom.fit import NodeSnapshot, Policy


@dataclass(frozen=True)
class ScalingOutcome:
    decision: Decision
    headroom: Headroom
    limited: Limited

    @property
    def applied_replicas(self) -> int:
        return self.limited.applied_replicas


def evaluate(
    spec: ScalerSpec,
    observations: Observations,
    history: History,
    *,
    demand: GpuDemand | None,
    snapshots: Sequence[NodeSnapshot],
    placed_replicas: int,
    now_unix_seconds: float,
    staleness_seconds: float,
    policy: Policy = Policy.BINPACK,
) -> ScalingOutcome:
    """The decision, the GPUs' headroom for more replicas, and the count to write.

    `placed_replicas` are the target's pods already bound to a node (they are claims in
    `snapshots`); Ready pods are always placed, so this is also the "ready or placed" count.
    `snapshots` is best a headroom.capacity.CapacityIndex built once per round and shared by
    every AIScaler (plain snapshots work too: an index is then built for this call alone)."""
    decision = decide(spec, observations, history, now_unix_seconds)
    headroom = feasible_replicas(
        demand,
        snapshots,
        now_unix_seconds=now_unix_seconds,
        staleness_seconds=staleness_seconds,
        current_placed=placed_replicas,
        max_replicas=spec.max_replicas,
        policy=policy,
    )
    limited = apply_feasibility(decision, headroom, ready_or_placed=placed_replicas, spec=spec)
    return ScalingOutcome(decision, headroom, limited)
