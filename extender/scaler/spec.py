"""The AIScaler spec: parsing an AIScaler object (a JSON dict) into a validated, frozen ScalerSpec.

Owns the seed form, the full form, their defaults and every spec error message. Pure: no client
imports. An invalid spec raises SpecError whose `.field` is the path (`spec.minReplicas`) and whose
message says the expected form, so the controller can put it in a status condition and scale
nothing.

Seed form: `{deploymentName, metricType, targetValue, minReplicas, maxReplicas}`, with shorthands

- `metricType: queue_depth`: vLLM's waiting-requests gauge (`vllm:num_requests_waiting`) scraped
  from each Ready pod's `:8000/metrics`; `targetValue` is the queue one replica should carry, so
  the target is `AverageValue` (HPA's ratio over the Ready replicas).
- `metricType: gpu_util`: the agents' GPU utilisation of the GPUs the target's pods hold;
  `targetValue` is the average utilisation in percent (`Utilization`).

Full form metrics (`spec.metrics[]`, fields flat in each item):

- `{type: prometheus, query, serverAddress?, target}`: an instant query returning the total, read
  as HPA reads an External metric: target `{type: AverageValue, averageValue}` (desired =
  ceil(total / averageValue)) or `{type: Value, value}` (desired = ceil(Ready * total / value)).
- `{type: pods, metricName, port?, path?, target}`: the gauge scraped from each Ready pod;
  target `{type: AverageValue, averageValue}`.
- `{type: gpu, target}`: GPU utilisation; target `{type: Utilization, averageUtilization}`.
- `{type: queue_depth | gpu_util, targetValue, ...}`: the shorthands above, one per item.

Parsed in modules of their own: `schedule` (schedule.py), `coldStart` (anticipate.py) and
`scaleToZero` (zero.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from extender.scaler.anticipate import Anticipation, parse_anticipation
from extender.scaler.schedule import Window, parse_schedule
from extender.scaler.zero import ScaleToZero, parse_scale_to_zero
from headroom.fields import (
    FieldError,
    read_int,
    read_mapping,
    read_number,
    read_optional_mapping,
    read_str,
)

QUEUE_DEPTH_METRIC = "vllm:num_requests_waiting"
DEFAULT_METRICS_PORT = 8000
DEFAULT_METRICS_PATH = "/metrics"
DEFAULT_POLLING_INTERVAL_SECONDS = 15
MAX_REPLICAS_LIMIT = 2**31 - 1  # the int32 of a /scale subresource


class SpecError(FieldError):
    """An AIScaler spec that cannot be used; `field` is the path of the offending field."""


class TargetType(StrEnum):
    VALUE = "Value"  # the total itself should be `value` (HPA's External Value)
    AVERAGE_VALUE = "AverageValue"  # each replica should carry `value` of the total
    UTILIZATION = "Utilization"  # average GPU utilisation in percent


class PolicyType(StrEnum):
    PODS = "Pods"
    PERCENT = "Percent"


class SelectPolicy(StrEnum):
    MAX = "Max"  # the policy allowing the biggest change
    MIN = "Min"  # the policy allowing the smallest change
    DISABLED = "Disabled"  # no change in this direction


class FeasibilityMode(StrEnum):
    ENFORCE = "Enforce"  # never ask for more replicas than the GPUs can hold (+ allowPending)
    OBSERVE = "Observe"  # apply what the metrics ask; only report the limit


@dataclass(frozen=True)
class TargetRef:
    api_version: str
    kind: str
    name: str


@dataclass(frozen=True)
class PrometheusSource:
    query: str
    server_address: str | None = None  # None: the extender's configured Prometheus


@dataclass(frozen=True)
class PodsSource:
    metric_name: str
    port: int = DEFAULT_METRICS_PORT
    path: str = DEFAULT_METRICS_PATH


@dataclass(frozen=True)
class GpuSource:
    """Utilisation of the GPUs the target's pods hold, from the agents' GPUNode reports."""


Source = PrometheusSource | PodsSource | GpuSource


@dataclass(frozen=True)
class MetricTarget:
    type: TargetType
    value: float


@dataclass(frozen=True)
class MetricSpec:
    name: str  # unique within the spec: the key of observations and status
    source: Source
    target: MetricTarget


@dataclass(frozen=True)
class ScalingPolicy:
    type: PolicyType
    value: int
    period_seconds: int


@dataclass(frozen=True)
class ScalingRules:
    stabilization_window_seconds: int
    policies: tuple[ScalingPolicy, ...]
    select_policy: SelectPolicy


# HPA's defaults (autoscaling/v2).
DEFAULT_SCALE_UP = ScalingRules(
    0,
    (ScalingPolicy(PolicyType.PERCENT, 100, 15), ScalingPolicy(PolicyType.PODS, 4, 15)),
    SelectPolicy.MAX,
)
DEFAULT_SCALE_DOWN = ScalingRules(
    300, (ScalingPolicy(PolicyType.PERCENT, 100, 15),), SelectPolicy.MAX
)


@dataclass(frozen=True)
class Behavior:
    scale_up: ScalingRules = DEFAULT_SCALE_UP
    scale_down: ScalingRules = DEFAULT_SCALE_DOWN


@dataclass(frozen=True)
class Feasibility:
    mode: FeasibilityMode = FeasibilityMode.ENFORCE
    allow_pending: int = 0


@dataclass(frozen=True)
class ScalerSpec:
    target_ref: TargetRef
    metrics: tuple[MetricSpec, ...]
    min_replicas: int
    max_replicas: int
    polling_interval_seconds: int = DEFAULT_POLLING_INTERVAL_SECONDS
    behavior: Behavior = Behavior()
    feasibility: Feasibility = Feasibility()
    schedule: tuple[Window, ...] = ()  # cron windows raising minReplicas (schedule.py)
    anticipation: Anticipation = field(default_factory=Anticipation)  # anticipate.py
    scale_to_zero: ScaleToZero = field(default_factory=ScaleToZero)  # zero.py, minReplicas 0


def parse_spec(
    obj: Mapping[str, Any], *, default_scale_down_window_seconds: int | None = None
) -> ScalerSpec:
    """The AIScaler object's spec, validated, with defaults filled in. Raises SpecError.

    `default_scale_down_window_seconds` replaces HPA's 300 s default scale-down stabilisation
    for specs that do not set their own (as kube-controller-manager's
    --horizontal-pod-autoscaler-downscale-stabilization does for HPAs)."""
    spec = _object(obj.get("spec"), "spec", required=True)
    min_replicas = _integer(spec, "minReplicas", "spec", minimum=0, default=1)
    max_replicas = _integer(spec, "maxReplicas", "spec", minimum=1, default=None)
    if min_replicas > max_replicas:
        raise SpecError(
            "spec.minReplicas",
            f"must not exceed spec.maxReplicas ({max_replicas}); got {min_replicas}",
        )
    metrics = _metrics(spec)
    if min_replicas == 0 and not any(isinstance(m.source, PrometheusSource) for m in metrics):
        raise SpecError(
            "spec.minReplicas",
            "0 needs a metric that does not come from the pods (a prometheus query of a "
            "router's or gateway's queue): at zero replicas there is no pod to read",
        )
    return ScalerSpec(
        target_ref=_target_ref(spec),
        metrics=metrics,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        polling_interval_seconds=_integer(
            spec, "pollingInterval", "spec", minimum=1, default=DEFAULT_POLLING_INTERVAL_SECONDS
        ),
        behavior=_behavior(spec, default_scale_down_window_seconds),
        feasibility=_feasibility(spec),
        schedule=parse_schedule(spec.get("schedule"), max_replicas=max_replicas, error=SpecError),
        anticipation=parse_anticipation(spec.get("coldStart"), error=SpecError),
        scale_to_zero=parse_scale_to_zero(spec.get("scaleToZero"), error=SpecError),
    )


# -- target ------------------------------------------------------------------------------------
def _target_ref(spec: Mapping[str, Any]) -> TargetRef:
    ref = spec.get("scaleTargetRef")
    if ref is not None:
        if "deploymentName" in spec:
            raise SpecError(
                "spec.deploymentName", "give either deploymentName or scaleTargetRef, not both"
            )
        raw = _object(ref, "spec.scaleTargetRef", required=True)
        return TargetRef(
            api_version=_string(raw, "apiVersion", "spec.scaleTargetRef", default="apps/v1"),
            kind=_string(raw, "kind", "spec.scaleTargetRef"),
            name=_string(raw, "name", "spec.scaleTargetRef"),
        )
    if "deploymentName" not in spec:
        raise SpecError(
            "spec.scaleTargetRef",
            "required: {kind, name, apiVersion} of a resource "
            "with a /scale subresource (or the seed form's spec.deploymentName)",
        )
    return TargetRef("apps/v1", "Deployment", _string(spec, "deploymentName", "spec"))


# -- metrics -----------------------------------------------------------------------------------
SHORTHANDS = ("queue_depth", "gpu_util")
SOURCE_TYPES = ("prometheus", "pods", "gpu", *SHORTHANDS)


def _metrics(spec: Mapping[str, Any]) -> tuple[MetricSpec, ...]:
    if "metrics" in spec:
        for key in ("metricType", "targetValue"):
            if key in spec:
                raise SpecError(
                    f"spec.{key}",
                    "give either the seed form's metricType/targetValue or spec.metrics, not both",
                )
        items = spec["metrics"]
        if not isinstance(items, list) or not items:
            raise SpecError(
                "spec.metrics",
                "expected a non-empty list of metrics "
                "({type: prometheus | pods | gpu | queue_depth | gpu_util, ...})",
            )
        metrics = tuple(
            _metric(
                _object(item, f"spec.metrics[{i}]", required=True), f"spec.metrics[{i}]", index=i
            )
            for i, item in enumerate(items)
        )
        seen: set[str] = set()
        for i, metric in enumerate(metrics):
            if metric.name in seen:
                raise SpecError(
                    f"spec.metrics[{i}].name",
                    f"duplicate metric name {metric.name!r}; names must be unique",
                )
            seen.add(metric.name)
        return metrics
    kind = spec.get("metricType", "queue_depth")
    if kind not in SHORTHANDS:
        raise SpecError(
            "spec.metricType",
            f"must be one of {', '.join(SHORTHANDS)} "
            f"(got {kind!r}); use spec.metrics for other sources",
        )
    return (_shorthand(spec, "spec", kind=str(kind), name=str(kind)),)


def _shorthand(raw: Mapping[str, Any], where: str, *, kind: str, name: str) -> MetricSpec:
    target_value = _positive(raw, "targetValue", where)
    if kind == "queue_depth":
        return MetricSpec(
            name,
            PodsSource(QUEUE_DEPTH_METRIC),
            MetricTarget(TargetType.AVERAGE_VALUE, target_value),
        )
    if target_value > 100:
        raise SpecError(
            f"{where}.targetValue",
            f"expected a percentage in (0, 100] for gpu_util (got {target_value:g})",
        )
    return MetricSpec(name, GpuSource(), MetricTarget(TargetType.UTILIZATION, target_value))


def _metric(raw: Mapping[str, Any], where: str, *, index: int) -> MetricSpec:
    kind = raw.get("type")
    if kind not in SOURCE_TYPES:
        raise SpecError(f"{where}.type", f"must be one of {', '.join(SOURCE_TYPES)} (got {kind!r})")
    name = _string(raw, "name", where, default=f"{kind}-{index}")
    if kind in SHORTHANDS:
        return _shorthand(raw, where, kind=str(kind), name=name)
    source: Source
    allowed: tuple[TargetType, ...]
    if kind == "prometheus":
        address = raw.get("serverAddress")
        if address is not None and (
            not isinstance(address, str) or not address.startswith(("http://", "https://"))
        ):
            raise SpecError(
                f"{where}.serverAddress",
                f"expected an http(s) URL such as http://prometheus:9090 (got {address!r})",
            )
        source = PrometheusSource(_string(raw, "query", where), address)
        allowed = (TargetType.VALUE, TargetType.AVERAGE_VALUE)
    elif kind == "pods":
        path = _string(raw, "path", where, default=DEFAULT_METRICS_PATH)
        if not path.startswith("/"):
            raise SpecError(
                f"{where}.path", f"expected an absolute URL path such as /metrics (got {path!r})"
            )
        port = _integer(raw, "port", where, minimum=1, default=DEFAULT_METRICS_PORT)
        if port > 65535:
            raise SpecError(f"{where}.port", f"expected a port 1..65535 (got {port})")
        source = PodsSource(_string(raw, "metricName", where), port, path)
        allowed = (TargetType.AVERAGE_VALUE,)
    else:
        source, allowed = GpuSource(), (TargetType.UTILIZATION,)
    return MetricSpec(name, source, _target(raw, f"{where}.target", allowed))


_TARGET_FIELD = {
    TargetType.VALUE: "value",
    TargetType.AVERAGE_VALUE: "averageValue",
    TargetType.UTILIZATION: "averageUtilization",
}


def _target(raw: Mapping[str, Any], where: str, allowed: tuple[TargetType, ...]) -> MetricTarget:
    forms = " or ".join(f"{{type: {t}, {_TARGET_FIELD[t]}: <number > 0>}}" for t in allowed)
    target = raw.get("target")
    if not isinstance(target, Mapping):
        raise SpecError(where, f"required: {forms}")
    kind = target.get("type")
    if kind not in [t.value for t in allowed]:
        raise SpecError(
            f"{where}.type",
            f"must be {' or '.join(allowed)} for this source (got {kind!r}); expected {forms}",
        )
    target_type = TargetType(kind)
    value = _positive(target, _TARGET_FIELD[target_type], where)
    if target_type is TargetType.UTILIZATION and value > 100:
        raise SpecError(
            f"{where}.averageUtilization", f"expected a percentage in (0, 100] (got {value:g})"
        )
    return MetricTarget(target_type, value)


# -- behavior ----------------------------------------------------------------------------------
def _behavior(spec: Mapping[str, Any], down_window_seconds: int | None) -> Behavior:
    raw = _object(spec.get("behavior"), "spec.behavior")
    down = (
        DEFAULT_SCALE_DOWN
        if down_window_seconds is None
        else replace(DEFAULT_SCALE_DOWN, stabilization_window_seconds=down_window_seconds)
    )
    return Behavior(
        scale_up=_rules(raw.get("scaleUp"), "spec.behavior.scaleUp", DEFAULT_SCALE_UP),
        scale_down=_rules(raw.get("scaleDown"), "spec.behavior.scaleDown", down),
    )


def _rules(value: object, where: str, default: ScalingRules) -> ScalingRules:
    """HPA's merge: fields given replace the default's, fields left out keep it."""
    raw = _object(value, where)
    window = _integer(
        raw,
        "stabilizationWindowSeconds",
        where,
        minimum=0,
        default=default.stabilization_window_seconds,
    )
    if window > 3600:
        raise SpecError(
            f"{where}.stabilizationWindowSeconds", f"expected 0..3600 seconds (got {window})"
        )
    select = raw.get("selectPolicy", default.select_policy.value)
    if select not in [s.value for s in SelectPolicy]:
        raise SpecError(f"{where}.selectPolicy", f"must be Max, Min or Disabled (got {select!r})")
    policies = default.policies
    if "policies" in raw:
        items = raw["policies"]
        if not isinstance(items, list) or not items:
            raise SpecError(
                f"{where}.policies",
                "expected a non-empty list of "
                "{type: Pods | Percent, value: <int > 0>, periodSeconds: 1..1800}",
            )
        policies = tuple(_policy(item, f"{where}.policies[{i}]") for i, item in enumerate(items))
    return ScalingRules(window, policies, SelectPolicy(select))


def _policy(value: object, where: str) -> ScalingPolicy:
    raw = _object(value, where, required=True)
    kind = raw.get("type")
    if kind not in [p.value for p in PolicyType]:
        raise SpecError(f"{where}.type", f"must be Pods or Percent (got {kind!r})")
    amount = _integer(raw, "value", where, minimum=1, default=None)
    period = _integer(raw, "periodSeconds", where, minimum=1, default=None)
    if period > 1800:
        raise SpecError(f"{where}.periodSeconds", f"expected 1..1800 seconds (got {period})")
    return ScalingPolicy(PolicyType(kind), amount, period)


def _feasibility(spec: Mapping[str, Any]) -> Feasibility:
    raw = _object(spec.get("feasibility"), "spec.feasibility")
    mode = raw.get("mode", FeasibilityMode.ENFORCE.value)
    if mode not in [m.value for m in FeasibilityMode]:
        raise SpecError("spec.feasibility.mode", f"must be Enforce or Observe (got {mode!r})")
    return Feasibility(
        FeasibilityMode(mode),
        _integer(raw, "allowPending", "spec.feasibility", minimum=0, default=0),
    )


# -- field readers: headroom.fields, with this spec's "required: <form>" for absent fields --------
def _object(value: object, where: str, *, required: bool = False) -> Mapping[str, Any]:
    if required:
        return read_mapping(value, where, error=SpecError)
    return read_optional_mapping(value, where, error=SpecError)


def _string(raw: Mapping[str, Any], key: str, where: str, *, default: str | None = None) -> str:
    value = raw.get(key, default)
    if value is None:
        raise SpecError(f"{where}.{key}", "required: a non-empty string")
    return read_str(value, f"{where}.{key}", nonempty=True, error=SpecError)


def _integer(
    raw: Mapping[str, Any], key: str, where: str, *, minimum: int, default: int | None
) -> int:
    value = raw.get(key, default)
    if value is None:
        raise SpecError(f"{where}.{key}", f"required: an integer >= {minimum}")
    return read_int(
        value, f"{where}.{key}", minimum=minimum, maximum=MAX_REPLICAS_LIMIT, error=SpecError
    )


def _positive(raw: Mapping[str, Any], key: str, where: str) -> float:
    value = raw.get(key)
    if value is None:
        raise SpecError(
            f"{where}.{key}", "required: a number > 0 (the value one replica should carry)"
        )
    return read_number(value, f"{where}.{key}", above=0, error=SpecError)
