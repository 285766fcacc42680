"""Filter and prioritize answer what asking `fit_summary` and `score_summary` of each node in
turn answers (the verbs before they asked many nodes at once, kept here as the reference): over
random nodes, report errors, repeated and unknown names, names or full Node objects, and pods
whose claims are allocated or not, with a DRA check refusing some nodes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from extender import verbs
from extender.verbs import DraCheck, Settings, filter_nodes, prioritize
from extender.wire import ExtenderFilterResult, HostPriority
from headroom import dra, names
from headroom.demand import GpuDemand
from headroom.fit import (
    Fit,
    NodeSummary,
    Policy,
    Reason,
    ReasonKind,
    fit_summary,
    score_summary,
    summarize,
)
from headroom.podclaims import PodGpus
from tests.headroom.builders import NOW
from tests.headroom.strategies import STALE, demands, snapshots

POOL = [f"node-{i}" for i in range(6)]


def reference_filter(
    demand: GpuDemand,
    claims: PodGpus,
    node_names: Sequence[str],
    nodes: Sequence[dict[str, Any]] | None,
    *,
    by_name: dict[str, NodeSummary],
    errors: dict[str, str],
    policy: Policy,
    dra_check: DraCheck | None,
) -> tuple[ExtenderFilterResult, dict[str, int]]:
    passed: list[int] = []
    failed: dict[str, str] = {}
    unresolvable: dict[str, str] = {}
    counts: dict[str, int] = {}
    for i, name in enumerate(node_names):
        error = errors.get(name)
        verdict: Fit | Reason = (
            Reason(error, kind=ReasonKind.NO_REPORT)
            if error
            else Fit(claims.gpu_uuids)
            if claims.allocated
            else fit_summary(
                demand,
                by_name[name],
                now_unix_seconds=NOW,
                staleness_seconds=STALE,
                policy=policy,
            )
        )
        if isinstance(verdict, Fit) and demand.dra and dra_check is not None:
            verdict = dra_check(name, demand, claims) or verdict
        if isinstance(verdict, Fit):
            passed.append(i)
            continue
        counts[verdict.kind.value] = counts.get(verdict.kind.value, 0) + 1
        failed[name] = verdict.message
        if not verdict.resolvable:
            unresolvable[name] = verdict.message
    counts["passed"] = len(passed)
    result = ExtenderFilterResult(
        FailedNodes=failed, FailedAndUnresolvableNodes=unresolvable, Error=""
    )
    if nodes is None:
        result["NodeNames"] = [node_names[i] for i in passed]
    else:
        result["Nodes"] = {"items": [nodes[i] for i in passed]}
    return result, counts


@st.composite
def clusters(draw: st.DrawFn) -> tuple[dict[str, NodeSummary], dict[str, str]]:
    by_name = {name: summarize(draw(snapshots(name))) for name in POOL}
    broken = draw(st.sets(st.sampled_from(POOL), max_size=2))
    return by_name, {name: f"GPU report unreadable: {name}" for name in broken}


@dataclass
class Case:
    by_name: dict[str, NodeSummary]
    errors: dict[str, str]
    demand: GpuDemand
    node_names: list[str]  # repeats, and nodes left out
    policy: Policy
    nodes: list[dict[str, Any]] | None  # full Node objects instead of names
    claims: PodGpus  # allocated or not
    refused: set[str]  # where the DRA check refuses

    def summaries(
        self, names_: Sequence[str], *, after_filter: bool = False
    ) -> tuple[list[NodeSummary], dict[str, str]]:
        return [self.by_name[n] for n in names_], {
            n: self.errors[n] for n in names_ if n in self.errors
        }


@st.composite
def cases(draw: st.DrawFn) -> Case:
    by_name, errors = draw(clusters())
    node_names = draw(st.lists(st.sampled_from(POOL), max_size=10))
    allocated = PodGpus(ask=dra.GpuAsk(count=1), gpu_uuids=("GPU-x",))
    return Case(
        by_name,
        errors,
        draw(demands),
        node_names,
        draw(st.sampled_from(list(Policy))),
        draw(st.sampled_from([None, [{"metadata": {"name": n}} for n in node_names]])),
        draw(st.sampled_from([PodGpus(), allocated])),
        draw(st.sets(st.sampled_from(POOL))),
    )


class Recorder:
    """A DRA check refusing the case's nodes, recording which nodes it was asked about."""

    def __init__(self, refused: set[str]) -> None:
        self.refused = refused
        self.asked: list[str] = []

    def __call__(self, name: str, demand: GpuDemand, claims: PodGpus) -> Reason | None:
        self.asked.append(name)
        return Reason(f"DRA: {name} refused") if name in self.refused else None


def pod_of(policy: Policy) -> dict[str, Any]:
    return {"metadata": {"uid": "p", "annotations": {names.PLACEMENT_POLICY_ANNOTATION: policy}}}


@settings(max_examples=300, deadline=None)
@given(cases())
def test_filter_answers_what_asking_fit_of_each_node_answers(case: Case) -> None:
    check, reference_check = Recorder(case.refused), Recorder(case.refused)
    with mock.patch.object(verbs, "pod_demand", return_value=(case.demand, case.claims)):
        outcome = filter_nodes(
            pod_of(case.policy),
            case.node_names,
            case.nodes,
            summaries=case.summaries,
            now_unix_seconds=NOW,
            settings=Settings(staleness_seconds=STALE),
            dra_check=check,
        )
    expected = reference_filter(
        case.demand,
        case.claims,
        case.node_names,
        case.nodes,
        by_name=case.by_name,
        errors=case.errors,
        policy=case.policy,
        dra_check=reference_check,
    )
    assert (outcome.result, outcome.counts) == expected
    assert sorted(check.asked) == sorted(reference_check.asked)  # the same nodes, each once


@settings(max_examples=100, deadline=None)
@given(clusters(), demands, st.lists(st.sampled_from(POOL), max_size=10))
def test_prioritize_scores_each_node_by_score_summary(
    cluster: tuple[dict[str, NodeSummary], dict[str, str]],
    demand: GpuDemand,
    node_names: list[str],
) -> None:
    by_name, _ = cluster
    for policy in Policy:
        with mock.patch.object(verbs, "pod_demand", return_value=(demand, PodGpus())):
            scores = prioritize(
                pod_of(policy),
                node_names,
                summaries=Case(by_name, {}, demand, [], policy, None, PodGpus(), set()).summaries,
                settings=Settings(),
            )
        expected: list[HostPriority] = [
            {"Host": n, "Score": score_summary(by_name[n], policy=policy)} for n in node_names
        ]
        assert scores == expected
