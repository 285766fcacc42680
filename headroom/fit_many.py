"""Fit and score asked of many nodes at once: the extender's filter and prioritize, which a
scheduler sends thousands of node names per pod.

The answers are `fit_summary`'s and `score_summary`'s (headroom/fit.py), node by node; these only
spare the call per node and the objects a single answer builds (a Fit's GPUs, a Reason's words),
which cost more than the accounting itself once the summaries are made. Pure, like fit.py.
"""

from __future__ import annotations

from collections.abc import Iterable

from headroom.demand import GpuDemand
from headroom.fit import MAX_SCORE, NodeSummary, Policy, needed_gpus


def fits(
    demand: GpuDemand,
    summaries: Iterable[NodeSummary],
    *,
    now_unix_seconds: float,
    staleness_seconds: float,
) -> list[bool]:
    """For each summary, whether `fit_summary` answers Fit, without building the Fit (its GPUs)
    or any Reason: the filter asks this of thousands of nodes per pod, and only fails need words.
    `fit_summary`'s tests, written out, since a call per node would cost as much as they do:
    `freshness_reason` finds none (a healthy report, `is_fresh`), and at least the GPUs wanted
    have room (the pool ascends: the wanted-th largest has room)."""
    memory_bytes, count = demand.memory_bytes, demand.gpu_count
    if demand.all_gpus or count <= 0:  # GPUs wanted: as many as the node has, or none
        return [
            _fresh(s, now_unix_seconds, staleness_seconds)
            and _room(demand, s, needed_gpus(demand, s))
            for s in summaries
        ]
    shared = demand.shared
    if count == 1:  # most pods: the pool's most free GPU has room (never, in an empty pool)
        return [
            now_unix_seconds - s.acting_since_unix_seconds <= staleness_seconds
            and (s.shared_most_free if shared else s.exclusive_most_free) >= memory_bytes
            for s in summaries
        ]
    return [
        now_unix_seconds - s.acting_since_unix_seconds <= staleness_seconds
        and len(frees := s.shared_free if shared else s.exclusive_free) >= count
        and frees[-count] >= memory_bytes
        for s in summaries
    ]


def _fresh(summary: NodeSummary, now_unix_seconds: float, staleness_seconds: float) -> bool:
    return now_unix_seconds - summary.acting_since_unix_seconds <= staleness_seconds


def _room(demand: GpuDemand, summary: NodeSummary, wanted: int) -> bool:
    frees = summary.shared_free if demand.shared else summary.exclusive_free
    return wanted <= 0 or (len(frees) >= wanted and frees[-wanted] >= demand.memory_bytes)


def scores(summaries: Iterable[NodeSummary], *, policy: Policy) -> list[int]:
    """`score_summary` of each summary, in one pass (prioritize asks it of every node)."""
    packed = [summary.binpack_score for summary in summaries]
    return packed if policy is Policy.BINPACK else [MAX_SCORE - score for score in packed]
