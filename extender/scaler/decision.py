"""The scaling decision: a pure function of (spec, observations, history, now).

Owns HPA's replica arithmetic as Headroom applies it:

- per metric: desired = ceil(total / target) for a total (`Value`), HPA's ratio
  ceil(ready * average / target) for averages, no change within the 0.1 tolerance;
- pods that are not Ready are left out of averages; on a scale-up they count as capacity
  arriving (at zero load), HPA's rule;
- HPA's missing-metric rule: a Ready pod without a value counts as at target on a scale-down and
  as zero on a scale-up, and if that flips the direction nothing changes;
- a metric whose source is down (no observation at all) means no change at all;
- several metrics: the highest recommendation wins;
- stabilisation windows over the recommendation history, Pods/Percent rate policies with
  selectPolicy, min/max, and no scale-up while replicas are still Pending (no cascade).

Feasibility (how many replicas the GPUs can hold) is applied after this, in feasibility.py.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from extender.scaler.spec import (
    MetricSpec,
    PolicyType,
    PrometheusSource,
    ScalerSpec,
    ScalingRules,
    SelectPolicy,
    TargetType,
)

TOLERANCE = 0.1


@dataclass(frozen=True)
class PodState:
    """One pod of the target, as the controller sees it."""

    name: str
    ready: bool
    pending: bool = False  # not running yet: unscheduled, or scheduled without an IP


@dataclass(frozen=True)
class MetricObservation:
    """One metric's reading. `total` for totals (prometheus); `per_pod` for per-pod sources
    (pods, gpu): only the pods that answered; a failed scrape is absent, never zero."""

    total: float | None = None
    per_pod: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Observations:
    current_replicas: int  # the target's /scale spec.replicas
    pods: tuple[PodState, ...] = ()
    # By metric name; a metric absent here had its source down: nothing changes.
    metrics: Mapping[str, MetricObservation] = field(default_factory=dict)

    @property
    def pending_replicas(self) -> int:
        """Pods not yet running, plus replicas whose pods do not exist yet."""
        return sum(p.pending for p in self.pods) + max(0, self.current_replicas - len(self.pods))


@dataclass(frozen=True)
class History:
    """What decide needs to remember between rounds (kept in the controller's memory)."""

    recommendations: tuple[tuple[float, int], ...] = ()  # (unix seconds, raw recommendation)
    scale_events: tuple[tuple[float, int], ...] = ()  # (unix seconds, replicas added; < 0 removed)

    def with_scale(
        self, *, now_unix_seconds: float, from_replicas: int, to_replicas: int
    ) -> History:
        """The history after the controller wrote `to_replicas` (the rate policies count it)."""
        if to_replicas == from_replicas:
            return self
        event = (now_unix_seconds, to_replicas - from_replicas)
        return replace(self, scale_events=(*self.scale_events, event))


class Limit(StrEnum):
    TOO_FEW = "TooFew"  # raised to minReplicas
    TOO_MANY = "TooMany"  # lowered to maxReplicas


@dataclass(frozen=True)
class Decision:
    desired_replicas: int
    current_replicas: int
    reason: str  # words for status and Events
    history: History
    active: bool = True  # False: the metrics could not be used (ScalingActive False)
    limit: Limit | None = None
    recommendations: Mapping[str, int] = field(default_factory=dict)  # per metric


class _Missing(Exception):  # a signal inside this module, never raised out of it
    """A metric cannot give a recommendation this round."""


def decide(spec: ScalerSpec, observations: Observations, history: History, now: float) -> Decision:
    """How many replicas the target should have now, and why."""
    current = observations.current_replicas
    if current == 0 and spec.min_replicas > 0:
        return Decision(
            0,
            0,
            "the target is scaled to 0: autoscaling is off until it is scaled up (as HPA)",
            history,
            active=False,
        )
    recommendations: dict[str, int] = {}
    notes: list[str] = []
    for metric in spec.metrics:
        try:
            count, note = _recommend(metric, observations)
        except _Missing as exc:
            return Decision(
                current,
                current,
                f"metric {metric.name}: {exc}; holding {current} replicas",
                history,
                active=False,
            )
        recommendations[metric.name] = count
        notes.append(f"{note}: {count} replicas")
    raw = max(recommendations.values())
    stabilized, history = _stabilize(spec, raw, current, history, now)
    if stabilized != raw:
        notes.append(f"stabilised to {stabilized}")
    desired = _rate_limit(spec, stabilized, current, history, now)
    if desired != stabilized:
        notes.append(f"rate policy allows {desired}")
    pending = observations.pending_replicas
    if desired > current and pending:
        desired = current
        notes.append(
            f"{pending} Pending replica{'s' if pending > 1 else ''}: no scale-up until they run"
        )
    limit = None
    if desired > spec.max_replicas:
        desired, limit = spec.max_replicas, Limit.TOO_MANY
        notes.append(f"capped at maxReplicas {spec.max_replicas}")
    elif desired < spec.min_replicas:
        desired, limit = spec.min_replicas, Limit.TOO_FEW
        notes.append(f"raised to minReplicas {spec.min_replicas}")
    return Decision(
        desired, current, "; ".join(notes), history, limit=limit, recommendations=recommendations
    )


# -- one metric --------------------------------------------------------------------------------
def _recommend(metric: MetricSpec, obs: Observations) -> tuple[int, str]:
    reading = obs.metrics.get(metric.name)
    if reading is None:
        raise _Missing("no data (metric source unavailable)")
    target = metric.target.value
    if isinstance(metric.source, PrometheusSource):
        total = reading.total
        if total is None or not math.isfinite(total):
            raise _Missing("no data (empty or NaN result)")
        if metric.target.type is TargetType.VALUE:
            return _from_total(total, target, obs.current_replicas), (
                f"{metric.name}: total {total:g} at {target:g} per replica"
            )
        ready = sum(p.ready and not p.pending for p in obs.pods)
        if ready == 0:
            raise _Missing("no Ready pod to average over")
        ratio = total / ready / target
        count = obs.current_replicas if abs(1 - ratio) <= TOLERANCE else math.ceil(ratio * ready)
        return count, f"{metric.name}: average {total / ready:g} against {target:g}"
    return _from_pods(metric, reading, obs)


def _from_total(total: float, target: float, current: int) -> int:
    if current > 0 and abs(1 - total / (target * current)) <= TOLERANCE:
        return current
    return math.ceil(total / target)


def _from_pods(
    metric: MetricSpec, reading: MetricObservation, obs: Observations
) -> tuple[int, str]:
    """HPA's per-pod calculation (missing and not-Ready pods included)."""
    target, current = metric.target.value, obs.current_replicas
    values, missing, unready = _classify(reading, obs)
    if not values:
        raise _Missing("no value from any Ready pod")
    ratio = sum(values.values()) / len(values) / target
    note = (
        f"{metric.name}: average {ratio * target:g} over {len(values)} Ready pods "
        f"against {target:g}"
    )
    rebalance_unready = bool(unready) and ratio > 1
    if not missing and not rebalance_unready:
        if abs(1 - ratio) <= TOLERANCE:
            return current, note
        return math.ceil(ratio * len(values)), note
    if ratio < 1:
        values.update(dict.fromkeys(missing, target))  # missing: at target on a scale-down
    elif ratio > 1:
        values.update(dict.fromkeys(missing, 0.0))  # missing: zero on a scale-up
    if rebalance_unready:
        values.update(dict.fromkeys(unready, 0.0))  # not Ready: capacity on the way
    new_ratio = sum(values.values()) / len(values) / target
    if abs(1 - new_ratio) <= TOLERANCE:
        return current, note + "; with missing or unready pods it is within tolerance"
    if (ratio - 1) * (new_ratio - 1) < 0:
        return current, note + "; missing or unready pods flip the direction"
    count = math.ceil(new_ratio * len(values))
    if (new_ratio < 1 and count > current) or (new_ratio > 1 and count < current):
        return current, note + "; missing or unready pods flip the direction"
    return count, note


def _classify(
    reading: MetricObservation, obs: Observations
) -> tuple[dict[str, float], list[str], list[str]]:
    """Values of Ready pods, Ready pods without a value, and pods not Ready (values ignored)."""
    values: dict[str, float] = {}
    missing: list[str] = []
    unready: list[str] = []
    for pod in obs.pods:
        value = reading.per_pod.get(pod.name)
        if pod.pending or not pod.ready:
            unready.append(pod.name)
        elif value is None or not math.isfinite(value):
            missing.append(pod.name)
        else:
            values[pod.name] = value
    return values, missing, unready


# -- behavior ----------------------------------------------------------------------------------
def _stabilize(
    spec: ScalerSpec, raw: int, current: int, history: History, now: float
) -> tuple[int, History]:
    """HPA's stabilisation: up to the lowest recommendation in the scale-up window, down to the
    highest in the scale-down window (the new one included)."""
    up_window = spec.behavior.scale_up.stabilization_window_seconds
    down_window = spec.behavior.scale_down.stabilization_window_seconds
    up, down = raw, raw
    for at, count in history.recommendations:
        if at > now - up_window:
            up = min(up, count)
        if at > now - down_window:
            down = max(down, count)
    result = min(max(current, up), down)
    keep = max(up_window, down_window)
    kept = tuple(r for r in history.recommendations if r[0] > now - keep)
    longest = max(
        (
            p.period_seconds
            for rules in (spec.behavior.scale_up, spec.behavior.scale_down)
            for p in rules.policies
        ),
        default=0,
    )
    events = tuple(e for e in history.scale_events if e[0] > now - longest)
    return result, History((*kept, (now, raw)), events)


def _rate_limit(spec: ScalerSpec, desired: int, current: int, history: History, now: float) -> int:
    if desired > current:
        limit = max(current, _up_limit(spec.behavior.scale_up, current, history, now))
        return min(desired, limit)
    if desired < current:
        limit = min(current, _down_limit(spec.behavior.scale_down, current, history, now))
        return max(desired, limit)
    return desired


def _period_start(history: History, period_seconds: int, current: int, now: float) -> int:
    """The replica count at the start of the policy's period: current minus the net change
    written within it (HPA counts both directions)."""
    return current - sum(change for at, change in history.scale_events if at > now - period_seconds)


def _up_limit(rules: ScalingRules, current: int, history: History, now: float) -> int:
    if rules.select_policy is SelectPolicy.DISABLED:
        return current
    proposals = []
    for policy in rules.policies:
        start = _period_start(history, policy.period_seconds, current, now)
        if policy.type is PolicyType.PODS:
            proposals.append(start + policy.value)
        else:
            proposals.append(math.ceil(start * (1 + policy.value / 100)))
    return max(proposals) if rules.select_policy is SelectPolicy.MAX else min(proposals)


def _down_limit(rules: ScalingRules, current: int, history: History, now: float) -> int:
    if rules.select_policy is SelectPolicy.DISABLED:
        return current
    proposals = []
    for policy in rules.policies:
        start = _period_start(history, policy.period_seconds, current, now)
        if policy.type is PolicyType.PODS:
            proposals.append(start - policy.value)
        else:
            proposals.append(math.floor(start * (1 - policy.value / 100)))
    # Max selects the policy allowing the biggest change: the lowest floor.
    return min(proposals) if rules.select_policy is SelectPolicy.MAX else max(proposals)
