"""`fits` and `scores` give, node by node, exactly `fit_summary`'s and `score_summary`'s answers:
over random nodes (no report, NVML unreadable, stale, fresh; GPUs healthy or not, held, shared,
pending whole-GPU claims) and random demands (shared or whole, 0..3 GPUs, DRA `All`)."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from headroom.demand import GpuDemand
from headroom.fit import (
    Fit,
    NodeSnapshot,
    NodeSummary,
    Policy,
    fit_summary,
    score_summary,
    summarize,
)
from headroom.fit_many import fits, scores
from tests.headroom.builders import NOW, gpu, node
from tests.headroom.strategies import STALE, demands, snapshots


@st.composite
def summaries(draw: st.DrawFn) -> list[NodeSummary]:
    count = draw(st.integers(0, 8))
    return [summarize(draw(snapshots(f"node-{i}"))) for i in range(count)]


@settings(max_examples=400, deadline=None)
@given(summaries(), demands, st.floats(min_value=1, max_value=10**6), st.data())
def test_fits_answers_what_fit_summary_answers(
    found: list[NodeSummary], demand: GpuDemand, staleness_seconds: float, data: st.DataObject
) -> None:
    frees = sorted({f for s in found for f in (*s.shared_free, *s.exclusive_free)})
    exact = data.draw(st.none() | st.sampled_from(frees)) if frees else None
    if exact is not None:  # exactly what a GPU has free: fits, just
        demand = replace(demand, memory_bytes=exact)
    for limit in (STALE, staleness_seconds):
        answers = fits(demand, found, now_unix_seconds=NOW, staleness_seconds=limit)
        expected = [
            isinstance(
                fit_summary(demand, summary, now_unix_seconds=NOW, staleness_seconds=limit),
                Fit,
            )
            for summary in found
        ]
        assert answers == expected


@settings(max_examples=100, deadline=None)
@given(summaries())
def test_scores_are_score_summary_for_either_policy(found: list[NodeSummary]) -> None:
    for policy in Policy:
        assert scores(found, policy=policy) == [score_summary(s, policy=policy) for s in found]


def test_a_node_without_a_report_or_with_nvml_unreadable_never_fits() -> None:
    empty = GpuDemand(1)
    unreadable = summarize(node("sick", healthy=False))
    absent = summarize(NodeSnapshot("absent", None))
    assert fits(empty, [unreadable, absent], now_unix_seconds=NOW, staleness_seconds=STALE) == [
        False,
        False,
    ]


def test_no_gpu_with_room_means_no_fit_even_for_a_demand_of_no_memory() -> None:
    no_gpus = summarize(node("empty"))
    all_sick = summarize(node("sick-gpus", gpu(0, healthy=False), gpu(1, healthy=False)))
    for demand in (GpuDemand(1), GpuDemand(1, 0, shared=True), GpuDemand(2, 0, shared=True)):
        answers = fits(demand, [no_gpus, all_sick], now_unix_seconds=NOW, staleness_seconds=STALE)
        assert answers == [False, False]
        assert not any(
            isinstance(fit_summary(demand, s, now_unix_seconds=NOW, staleness_seconds=STALE), Fit)
            for s in (no_gpus, all_sick)
        )
