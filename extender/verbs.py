"""Filter and prioritize: answers computed from the cluster view, writing nothing anywhere.

Each verb reads the summaries of the candidate nodes (one lock, computed once per change) and asks
the pure accounting: `fits` / `scores` of them all in one pass (headroom/fit_many.py, the answers
of `fit_summary` / `score_summary` node by node), then `fit_summary` of the nodes that fail, for
their reason. So the answer is what DESIGN.md's accounting says, and the scaler's feasibility
(which calls the same functions) cannot disagree with it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

from extender.wire import ExtenderFilterResult, HostPriority, JsonObject
from headroom import names
from headroom.demand import DemandError, GpuDemand
from headroom.fields import FieldError
from headroom.fit import (
    NodeSummary,
    Policy,
    Reason,
    ReasonKind,
    fit_summary,
)
from headroom.fit_many import fits, scores
from headroom.podclaims import NO_GPUS, NO_LOOKUPS, DraLookups, PodGpus, has_claims, pod_gpus


@dataclass(frozen=True)
class Settings:
    staleness_seconds: float = names.DEFAULT_STALENESS_SECONDS
    policy: Policy = Policy.BINPACK


class PolicyError(FieldError):
    """A placement-policy annotation that names no policy; `field` is the annotation."""


def pod_policy(pod: JsonObject, default: Policy) -> Policy:
    """The placement policy a pod asks for with its annotation, else the configured one."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(names.PLACEMENT_POLICY_ANNOTATION)
    if value is None:
        return default
    try:
        return Policy(value)
    except ValueError as exc:
        raise PolicyError(
            names.PLACEMENT_POLICY_ANNOTATION, f'expected "binpack" or "spread" (got {value!r})'
        ) from exc


@dataclass(frozen=True)
class FilterOutcome:
    result: ExtenderFilterResult
    counts: dict[str, int]  # nodes by result: "passed" or a ReasonKind value


class Summaries(Protocol):
    """The nodes' summaries, in order, and the report errors of those whose report is unreadable
    (`ClusterView.summaries`); `after_filter` when asking about nodes a filter just passed."""

    def __call__(
        self, node_names: Sequence[str], /, *, after_filter: bool = False
    ) -> tuple[list[NodeSummary], dict[str, str]]: ...


# What a DRA pod gets beyond fit, per node (extender.dracheck.DraGate.check).
DraCheck = Callable[[str, GpuDemand, PodGpus], Reason | None]


def pod_demand(pod: Mapping[str, Any], dra: DraLookups) -> tuple[GpuDemand | None, PodGpus]:
    """The pod's demand with its ResourceClaims. Raises DemandError naming the field of a claim
    that cannot be read, or one the extender has not seen yet (the scheduler tries again)."""
    try:
        claims = pod_gpus(pod, dra) if has_claims(pod) else NO_GPUS
    except FieldError as exc:
        raise DemandError(exc.field, exc.message) from exc
    if claims.unknown:
        raise DemandError(
            claims.unknown[0], "its ResourceClaim is not known to the extender yet (retrying)"
        )
    return GpuDemand.from_pod(pod, claims=claims), claims


def filter_nodes(
    pod: JsonObject,
    node_names: Sequence[str],
    nodes: Sequence[JsonObject] | None,
    *,
    summaries: Summaries,
    now_unix_seconds: float,
    settings: Settings,
    dra: DraLookups = NO_LOOKUPS,
    dra_check: DraCheck | None = None,
) -> FilterOutcome:
    """The scheduler's filter verb. DemandError or PolicyError propagate (the caller answers
    them in `Error`). A pod with GPUs from ResourceClaims also passes `dra_check` on each node;
    once its claims are allocated, that check alone decides (its GPUs are chosen)."""
    demand, claims = pod_demand(pod, dra)
    policy = pod_policy(pod, settings.policy)
    if demand is None:  # a pod without GPUs: Headroom has no say
        everyone = ExtenderFilterResult(FailedNodes={}, FailedAndUnresolvableNodes={}, Error="")
        return FilterOutcome(
            _answer(everyone, node_names, nodes, ()),
            counts={"passed": len(node_names)},
        )
    found, errors = summaries(node_names)
    # Once its claims are allocated, the pod's GPUs are chosen: every node with a report passes
    # fit (and `dra_check` decides). Otherwise one pass over all nodes says which fit, and only
    # the others are asked again, for their reason: `fit_summary` decides, `fits` spares asking
    # it of every node.
    passes = (
        [True] * len(found)
        if claims.allocated
        else fits(
            demand,
            found,
            now_unix_seconds=now_unix_seconds,
            staleness_seconds=settings.staleness_seconds,
        )
    )
    reasons = {
        i: Reason(errors[n], kind=ReasonKind.NO_REPORT) for i, n in _among(node_names, errors)
    }
    explain = partial(
        fit_summary,
        demand,
        now_unix_seconds=now_unix_seconds,
        staleness_seconds=settings.staleness_seconds,
        policy=policy,
    )
    for i in [i for i, passed in enumerate(passes) if not passed and i not in reasons]:
        verdict = explain(found[i])
        if isinstance(verdict, Reason):
            reasons[i] = verdict
    if demand.dra and dra_check is not None:  # on every node that fits
        for i, name in enumerate(node_names):
            reason = None if i in reasons else dra_check(name, demand, claims)
            if reason is not None:
                reasons[i] = reason
    return _outcome(node_names, nodes, reasons)


def _among(node_names: Sequence[str], errors: Mapping[str, str]) -> list[tuple[int, str]]:
    """(index, name) of the nodes that have an error (none, mostly: not a pass over them all)."""
    return [(i, n) for i, n in enumerate(node_names) if n in errors] if errors else []


def _outcome(
    node_names: Sequence[str], nodes: Sequence[JsonObject] | None, reasons: dict[int, Reason]
) -> FilterOutcome:
    """The answer to the scheduler: the nodes without a reason pass."""
    failed: dict[str, str] = {}
    unresolvable: dict[str, str] = {}
    counts: dict[str, int] = {}
    for i, reason in reasons.items():
        counts[reason.kind.value] = counts.get(reason.kind.value, 0) + 1
        failed[node_names[i]] = reason.message
        if not reason.resolvable:
            unresolvable[node_names[i]] = reason.message
    counts["passed"] = len(node_names) - len(reasons)
    result = ExtenderFilterResult(
        FailedNodes=failed, FailedAndUnresolvableNodes=unresolvable, Error=""
    )
    return FilterOutcome(_answer(result, node_names, nodes, reasons), counts=counts)


def _answer(
    result: ExtenderFilterResult,
    node_names: Sequence[str],
    nodes: Sequence[JsonObject] | None,
    failed: Collection[int],
) -> ExtenderFilterResult:
    """Names when names were sent, full Node objects when those were; the passed ones, in
    order: all but the indexes in `failed`."""
    if nodes is None:
        names = [n for i, n in enumerate(node_names) if i not in failed] if failed else node_names
        result["NodeNames"] = list(names)
    else:
        items = [node for i, node in enumerate(nodes) if i not in failed] if failed else nodes
        result["Nodes"] = {"items": list(items)}
    return result


def prioritize(
    pod: JsonObject,
    node_names: Sequence[str],
    *,
    summaries: Summaries,
    settings: Settings,
    dra: DraLookups = NO_LOOKUPS,
) -> list[HostPriority]:
    """0..10 per node by the pod's policy. The scheduler asks only about nodes the filter
    passed, so fit is not checked again here; a pod without GPUs scores 0 everywhere."""
    if pod_demand(pod, dra)[0] is None:
        return [{"Host": name, "Score": 0} for name in node_names]
    policy = pod_policy(pod, settings.policy)
    found, _ = summaries(node_names, after_filter=True)
    return [
        {"Host": name, "Score": score}
        for name, score in zip(node_names, scores(found, policy=policy), strict=True)
    ]
