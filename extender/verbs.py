"""Filter and prioritize: answers computed from the cluster view, writing nothing anywhere.

Each verb reads one snapshot per candidate node and calls the pure `fit` / `score`, so the answer
is what DESIGN.md's accounting says, and the scaler's feasibility (which calls the same functions)
cannot disagree with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from extender.wire import ExtenderFilterResult, HostPriority, JsonObject
from headroom import names
from headroom.demand import DemandError, GpuDemand
from headroom.fields import FieldError
from headroom.fit import (
    Fit,
    NodeSummary,
    Policy,
    Reason,
    ReasonKind,
    fit_summary,
    score_summary,
)
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


Summaries = Callable[[Sequence[str]], list[tuple[NodeSummary, str | None]]]
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
            _answer(everyone, node_names, nodes, range(len(node_names))),
            counts={"passed": len(node_names)},
        )
    passed: list[int] = []
    failed: dict[str, str] = {}
    unresolvable: dict[str, str] = {}
    counts: dict[str, int] = {}
    for i, (name, (summary, error)) in enumerate(
        zip(node_names, summaries(node_names), strict=True)
    ):
        verdict: Fit | Reason = (
            Reason(error, kind=ReasonKind.NO_REPORT)
            if error
            else Fit(claims.gpu_uuids)
            if claims.allocated
            else fit_summary(
                demand,
                summary,
                now_unix_seconds=now_unix_seconds,
                staleness_seconds=settings.staleness_seconds,
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
    return FilterOutcome(_answer(result, node_names, nodes, passed), counts=counts)


def _answer(
    result: ExtenderFilterResult,
    node_names: Sequence[str],
    nodes: Sequence[JsonObject] | None,
    passed: Iterable[int],
) -> ExtenderFilterResult:
    """Names when names were sent, full Node objects when those were."""
    if nodes is None:
        result["NodeNames"] = [node_names[i] for i in passed]
    else:
        result["Nodes"] = {"items": [nodes[i] for i in passed]}
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
        return [HostPriority(Host=name, Score=0) for name in node_names]
    policy = pod_policy(pod, settings.policy)
    return [
        HostPriority(Host=name, Score=score_summary(summary, policy=policy))
        for name, (summary, _) in zip(node_names, summaries(node_names), strict=True)
    ]
