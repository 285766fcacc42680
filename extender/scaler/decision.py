"""The scaling decision: a pure function of (spec, observations, history, now).

Owns HPA's replica arithmetic as Headroom applies it:

- bounds first: a target above maxReplicas or below minReplicas is brought inside them at once,
  before any metric is read (so also while no metric can be read), as HPA does;
- a Prometheus query is HPA's External metric: `Value` gives ceil(ready * total / value),
  `AverageValue` ceil(total / averageValue); a per-pod source is HPA's Pods metric,
  ceil(ready * average / target); no change while the ratio is within 0.9..1.1, both edges
  included (HPA 1.33+);
- pods that are not Ready are left out of averages; on a scale-up they count as capacity
  arriving (at zero load), HPA's rule;
- HPA's missing-metric rule: a Ready pod without a value counts as at target on a scale-down and
  as zero on a scale-up, and if that flips the direction nothing changes;
- several metrics: the highest recommendation wins; a metric that cannot be read (its source
  down, no Ready pod) gives none: with none left, or the others asking for fewer replicas, the
  count holds, and with the others asking for more it scales up on them (HPA's rule);
- stabilisation windows over the recommendation history, Pods/Percent rate policies with
  selectPolicy, min/max, and no scale-up while replicas are still Pending (no cascade).

Feasibility (how many replicas the GPUs can hold) is applied after this, in feasibility.py.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from extender.scaler.anticipate import projected
from extender.scaler.spec import (
    MetricSpec,
    PolicyType,
    PrometheusSource,
    ScalerSpec,
    ScalingRules,
    SelectPolicy,
    TargetType,
)
from extender.scaler.zero import activation

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
    last_active_unix_seconds: float | None = None  # minReplicas 0: last time the load woke it

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
    idle: bool = False  # minReplicas 0: held at zero replicas, the load below activation


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
    # HPA applies its bounds before it reads any metric: a target outside them is brought
    # inside at once, whatever the metrics say or whether they can be read at all.
    if current > spec.max_replicas:
        return Decision(
            spec.max_replicas,
            current,
            f"{current} replicas is above maxReplicas {spec.max_replicas}",
            history,
            limit=Limit.TOO_MANY,
        )
    if current < spec.min_replicas:
        return Decision(
            spec.min_replicas,
            current,
            f"{current} replicas is below minReplicas {spec.min_replicas}",
            history,
            limit=Limit.TOO_FEW,
        )
    recommendations: dict[str, int] = {}
    notes: list[str] = []
    missing: list[str] = []
    for metric in spec.metrics:
        try:
            count, note = _recommend(metric, observations)
        except _Missing as exc:
            missing.append(f"metric {metric.name}: {exc}")
            continue
        recommendations[metric.name] = count
        notes.append(f"{note}: {count} replicas")
    # HPA's rule: with every metric missing, or some missing and the others asking for fewer
    # replicas, hold; some missing and the others asking for more, scale up on those.
    if not recommendations or (missing and max(recommendations.values()) < current):
        return Decision(
            current,
            current,
            f"{'; '.join(missing)}; holding {current} replicas",
            history,
            active=False,
            recommendations=recommendations,
        )
    notes += missing
    raw = max(recommendations.values())
    idle = False
    if spec.min_replicas == 0:
        raw, history, idle = _toward_zero(spec, observations, raw, history, now=now, notes=notes)
    wanted = _anticipated(spec, raw, history, now, notes)
    stabilized, history = _stabilize(spec, wanted, current, history, now, record=raw)
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
        desired,
        current,
        "; ".join(notes),
        history,
        limit=limit,
        recommendations=recommendations,
        idle=idle and desired == 0,
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
        current = obs.current_replicas
        if metric.target.type is TargetType.VALUE:
            # HPA's External metric with a Value target: the ratio of the total to the target,
            # times the Ready pods.
            ratio = total / target
            if current == 0:
                return math.ceil(ratio), f"{metric.name}: {total:g} against {target:g}"
            ready = sum(p.ready and not p.pending for p in obs.pods)
            if ready == 0 and not within_tolerance(ratio):
                # HPA would multiply by 0 and fall to minReplicas; no Ready pod is no data.
                raise _Missing("no Ready pod to scale the ratio by")
            count = current if within_tolerance(ratio) else math.ceil(ratio * ready)
            return count, f"{metric.name}: {total:g} against {target:g} with {ready} Ready pods"
        # HPA's External metric with an AverageValue target: the total shared by the replicas.
        return _from_total(total, target, current), (
            f"{metric.name}: total {total:g} at {target:g} per replica"
        )
    return _from_pods(metric, reading, obs)


def within_tolerance(ratio: float) -> bool:
    """HPA's test (1.33 and later): 0.9 <= ratio <= 1.1, both edges included. Written as two
    comparisons, not |1 - ratio| <= 0.1, whose rounding puts a ratio of exactly 1.1 outside."""
    return 1.0 - TOLERANCE <= ratio <= 1.0 + TOLERANCE


def _from_total(total: float, target: float, current: int) -> int:
    if current > 0 and within_tolerance(total / (target * current)):
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
        if within_tolerance(ratio):
            return current, note
        return math.ceil(ratio * len(values)), note
    if ratio < 1:
        values.update(dict.fromkeys(missing, target))  # missing: at target on a scale-down
    elif ratio > 1:
        values.update(dict.fromkeys(missing, 0.0))  # missing: zero on a scale-up
    if rebalance_unready:
        values.update(dict.fromkeys(unready, 0.0))  # not Ready: capacity on the way
    new_ratio = sum(values.values()) / len(values) / target
    if within_tolerance(new_ratio):
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
def _toward_zero(
    spec: ScalerSpec,
    obs: Observations,
    raw: int,
    history: History,
    *,
    now: float,
    notes: list[str],
) -> tuple[int, History, bool]:
    """minReplicas 0: wake at the activation threshold, go to zero only after idleSeconds below
    it (a fresh history counts as woken now). Returns the recommendation, the history, and
    whether the target idles at zero."""
    totals = [
        obs.metrics[m.name].total
        for m in spec.metrics
        if isinstance(m.source, PrometheusSource) and m.name in obs.metrics
    ]
    awake, words = activation(totals, spec.scale_to_zero)
    if awake or history.last_active_unix_seconds is None:
        history = replace(history, last_active_unix_seconds=now)
    if awake:
        return max(raw, 1), history, False
    if obs.current_replicas == 0:
        notes.append(f"idle at zero: {words}")
        return 0, history, True
    quiet_seconds = now - (history.last_active_unix_seconds or now)
    if quiet_seconds >= spec.scale_to_zero.idle_seconds:
        notes.append(f"{words} for {quiet_seconds:.0f} s: to zero")
        return 0, history, True
    return max(raw, 1), history, False


def _anticipated(spec: ScalerSpec, raw: int, history: History, now: float, notes: list[str]) -> int:
    """With `spec.coldStart.anticipate`, what the rising load will ask for one cold start from
    now (never less than `raw`)."""
    policy = spec.anticipation
    if not policy.enabled or policy.seconds is None:
        return raw
    ahead = projected(
        (*history.recommendations, (now, raw)),
        now_unix_seconds=now,
        window_seconds=policy.trend_window_seconds,
        lead_seconds=policy.seconds,
    )
    if ahead is None or ahead <= raw:
        return raw
    notes.append(f"load rising: {ahead} replicas one cold start ({policy.seconds:g} s) ahead")
    return ahead


def _stabilize(
    spec: ScalerSpec, raw: int, current: int, history: History, now: float, *, record: int
) -> tuple[int, History]:
    """HPA's stabilisation: up to the lowest recommendation in the scale-up window, down to the
    highest in the scale-down window (the new one included). `record` is the recommendation the
    history keeps: the load's own, not its anticipation, so the trend is the load's."""
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
    return result, replace(history, recommendations=(*kept, (now, record)), scale_events=events)


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
