"""AIScaler spec parsing: the seed form exactly as shipped, the full form, defaults, and errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from extender.scaler.spec import (
    DEFAULT_SCALE_DOWN,
    DEFAULT_SCALE_UP,
    QUEUE_DEPTH_METRIC,
    Behavior,
    Feasibility,
    FeasibilityMode,
    GpuSource,
    MetricSpec,
    MetricTarget,
    PodsSource,
    PolicyType,
    PrometheusSource,
    ScalerSpec,
    ScalingPolicy,
    ScalingRules,
    SelectPolicy,
    SpecError,
    TargetRef,
    TargetType,
    parse_spec,
)

ROOT = Path(__file__).resolve().parents[3]
DEPLOYMENT = TargetRef("apps/v1", "Deployment", "llm-server")


def seed(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "deploymentName": "llm-server",
        "metricType": "queue_depth",
        "targetValue": 10,
        "minReplicas": 1,
        "maxReplicas": 10,
    }
    spec.update(changes)
    return {"spec": {k: v for k, v in spec.items() if v is not None}}


def full(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "llm"},
        "maxReplicas": 8,
        "metrics": [
            {"type": "prometheus", "query": "sum(queue)", "target": {"type": "Value", "value": 5}}
        ],
    }
    spec.update(changes)
    return {"spec": {k: v for k, v in spec.items() if v is not None}}


def test_the_shipped_seed_example_parses_to_the_documented_defaults() -> None:
    obj = yaml.safe_load((ROOT / "manifests/examples/seed-aiscaler.yaml").read_text())
    assert parse_spec(obj) == ScalerSpec(
        target_ref=DEPLOYMENT,
        metrics=(
            MetricSpec(
                "queue_depth",
                PodsSource(QUEUE_DEPTH_METRIC, 8000, "/metrics"),
                MetricTarget(TargetType.AVERAGE_VALUE, 10.0),
            ),
        ),
        min_replicas=1,
        max_replicas=10,
        polling_interval_seconds=15,
        behavior=Behavior(DEFAULT_SCALE_UP, DEFAULT_SCALE_DOWN),
        feasibility=Feasibility(FeasibilityMode.ENFORCE, 0),
    )


def test_defaults_are_hpas() -> None:
    up = (
        0,
        (ScalingPolicy(PolicyType.PERCENT, 100, 15), ScalingPolicy(PolicyType.PODS, 4, 15)),
        SelectPolicy.MAX,
    )
    down = (300, (ScalingPolicy(PolicyType.PERCENT, 100, 15),), SelectPolicy.MAX)
    assert (ScalingRules(*up), ScalingRules(*down)) == (DEFAULT_SCALE_UP, DEFAULT_SCALE_DOWN)


def test_the_operator_may_change_the_default_scale_down_window_but_not_a_specs_own() -> None:
    spec = parse_spec(seed(), default_scale_down_window_seconds=20)
    assert spec.behavior.scale_down.stabilization_window_seconds == 20
    assert spec.behavior.scale_down.policies == DEFAULT_SCALE_DOWN.policies
    own = parse_spec(
        seed(behavior={"scaleDown": {"stabilizationWindowSeconds": 60}}),
        default_scale_down_window_seconds=20,
    )
    assert own.behavior.scale_down.stabilization_window_seconds == 60


GOOD: list[tuple[str, dict[str, Any], Any]] = [
    ("minReplicas defaults to 1", seed(minReplicas=None), lambda s: s.min_replicas == 1),
    ("minReplicas 0 is allowed", seed(minReplicas=0), lambda s: s.min_replicas == 0),
    ("min equal to max", seed(minReplicas=10), lambda s: s.min_replicas == s.max_replicas == 10),
    (
        "gpu_util shorthand",
        seed(metricType="gpu_util", targetValue=70),
        lambda s: (
            s.metrics
            == (MetricSpec("gpu_util", GpuSource(), MetricTarget(TargetType.UTILIZATION, 70.0)),)
        ),
    ),
    (
        "metricType defaults to queue_depth",
        seed(metricType=None),
        lambda s: s.metrics[0].source == PodsSource(QUEUE_DEPTH_METRIC),
    ),
    ("fractional target", seed(targetValue=0.5), lambda s: s.metrics[0].target.value == 0.5),
    ("pollingInterval", seed(pollingInterval=30), lambda s: s.polling_interval_seconds == 30),
    (
        "scaleTargetRef",
        full(),
        lambda s: s.target_ref == TargetRef("apps/v1", "StatefulSet", "llm"),
    ),
    (
        "scaleTargetRef apiVersion defaults to apps/v1",
        full(scaleTargetRef={"kind": "Deployment", "name": "x"}),
        lambda s: s.target_ref == TargetRef("apps/v1", "Deployment", "x"),
    ),
    (
        "prometheus Value",
        full(),
        lambda s: (
            s.metrics
            == (
                MetricSpec(
                    "prometheus-0",
                    PrometheusSource("sum(queue)"),
                    MetricTarget(TargetType.VALUE, 5.0),
                ),
            )
        ),
    ),
    (
        "several metrics, named",
        full(
            metrics=[
                {
                    "type": "prometheus",
                    "name": "q",
                    "query": "x",
                    "serverAddress": "http://p:9090",
                    "target": {"type": "AverageValue", "averageValue": 3},
                },
                {
                    "type": "pods",
                    "metricName": "m",
                    "port": 9000,
                    "path": "/m",
                    "target": {"type": "AverageValue", "averageValue": 2},
                },
                {"type": "gpu", "target": {"type": "Utilization", "averageUtilization": 80}},
                {"type": "queue_depth", "targetValue": 4},
            ]
        ),
        lambda s: (
            [m.source for m in s.metrics]
            == [
                PrometheusSource("x", "http://p:9090"),
                PodsSource("m", 9000, "/m"),
                GpuSource(),
                PodsSource(QUEUE_DEPTH_METRIC),
            ]
            and [m.name for m in s.metrics] == ["q", "pods-1", "gpu-2", "queue_depth-3"]
        ),
    ),
    (
        "behavior merges with HPA's defaults",
        full(
            behavior={
                "scaleUp": {"stabilizationWindowSeconds": 60},
                "scaleDown": {
                    "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
                    "selectPolicy": "Min",
                },
            }
        ),
        lambda s: (
            s.behavior
            == Behavior(
                ScalingRules(60, DEFAULT_SCALE_UP.policies, SelectPolicy.MAX),
                ScalingRules(300, (ScalingPolicy(PolicyType.PODS, 1, 60),), SelectPolicy.MIN),
            )
        ),
    ),
    (
        "scale-down disabled",
        full(behavior={"scaleDown": {"selectPolicy": "Disabled"}}),
        lambda s: s.behavior.scale_down.select_policy is SelectPolicy.DISABLED,
    ),
    (
        "feasibility",
        full(feasibility={"mode": "Observe", "allowPending": 2}),
        lambda s: s.feasibility == Feasibility(FeasibilityMode.OBSERVE, 2),
    ),
    (
        "feasibility mode defaults to Enforce",
        full(feasibility={"allowPending": 1}),
        lambda s: s.feasibility == Feasibility(FeasibilityMode.ENFORCE, 1),
    ),
]


@pytest.mark.parametrize(
    ("obj", "check"), [(o, c) for _, o, c in GOOD], ids=[name for name, _, _ in GOOD]
)
def test_good_specs(obj: dict[str, Any], check: Any) -> None:
    assert check(parse_spec(obj))


BAD: list[tuple[dict[str, Any], str, str]] = [
    ({}, "spec", "expected an object"),
    ({"spec": []}, "spec", "expected an object"),
    (seed(minReplicas=11), "spec.minReplicas", "must not exceed spec.maxReplicas (10)"),
    (seed(maxReplicas=None), "spec.maxReplicas", "required: an integer >= 1"),
    (seed(maxReplicas=0), "spec.maxReplicas", "expected an integer >= 1"),
    (seed(maxReplicas="10"), "spec.maxReplicas", "expected an integer"),
    (seed(maxReplicas=True), "spec.maxReplicas", "expected an integer"),
    (seed(minReplicas=-1), "spec.minReplicas", "expected an integer >= 0"),
    (seed(metricType="cpu"), "spec.metricType", "must be one of queue_depth, gpu_util"),
    (seed(targetValue=None), "spec.targetValue", "required: a number > 0"),
    (seed(targetValue=0), "spec.targetValue", "expected a number > 0"),
    (seed(targetValue=float("nan")), "spec.targetValue", "expected a number > 0"),
    (seed(targetValue="10"), "spec.targetValue", "expected a number > 0"),
    (seed(metricType="gpu_util", targetValue=120), "spec.targetValue", "(0, 100] for gpu_util"),
    (
        full(metrics=[{"type": "gpu_util", "targetValue": 101}]),
        "spec.metrics[0].targetValue",
        "(0, 100]",
    ),
    (seed(deploymentName=None), "spec.scaleTargetRef", "required: {kind, name, apiVersion}"),
    (seed(deploymentName=""), "spec.deploymentName", "expected a non-empty string"),
    (seed(scaleTargetRef={"kind": "Deployment", "name": "x"}), "spec.deploymentName", "not both"),
    (full(scaleTargetRef={"name": "x"}), "spec.scaleTargetRef.kind", "required"),
    (full(scaleTargetRef="x"), "spec.scaleTargetRef", "expected an object"),
    (seed(pollingInterval=0), "spec.pollingInterval", "expected an integer >= 1"),
    (full(metricType="queue_depth"), "spec.metricType", "not both"),
    (full(metrics=[]), "spec.metrics", "non-empty list"),
    (full(metrics=["x"]), "spec.metrics[0]", "expected an object"),
    (
        full(metrics=[{"type": "cpu"}]),
        "spec.metrics[0].type",
        "must be one of prometheus, pods, gpu",
    ),
    (
        full(metrics=[{"type": "prometheus", "target": {"type": "Value", "value": 1}}]),
        "spec.metrics[0].query",
        "required",
    ),
    (
        full(metrics=[{"type": "prometheus", "query": "q"}]),
        "spec.metrics[0].target",
        "required: {type: Value, value: <number > 0>} or {type: AverageValue",
    ),
    (
        full(metrics=[{"type": "prometheus", "query": "q", "target": {"type": "Value"}}]),
        "spec.metrics[0].target.value",
        "required: a number > 0",
    ),
    (
        full(
            metrics=[
                {
                    "type": "prometheus",
                    "query": "q",
                    "serverAddress": "p:9090",
                    "target": {"type": "Value", "value": 1},
                }
            ]
        ),
        "spec.metrics[0].serverAddress",
        "http(s) URL",
    ),
    (
        full(
            metrics=[{"type": "pods", "metricName": "m", "target": {"type": "Value", "value": 1}}]
        ),
        "spec.metrics[0].target.type",
        "must be AverageValue for this source",
    ),
    (
        full(
            metrics=[
                {
                    "type": "pods",
                    "metricName": "m",
                    "port": 70000,
                    "target": {"type": "AverageValue", "averageValue": 1},
                }
            ]
        ),
        "spec.metrics[0].port",
        "1..65535",
    ),
    (
        full(
            metrics=[
                {
                    "type": "pods",
                    "metricName": "m",
                    "path": "metrics",
                    "target": {"type": "AverageValue", "averageValue": 1},
                }
            ]
        ),
        "spec.metrics[0].path",
        "absolute URL path",
    ),
    (
        full(
            metrics=[{"type": "gpu", "target": {"type": "Utilization", "averageUtilization": 150}}]
        ),
        "spec.metrics[0].target.averageUtilization",
        "(0, 100]",
    ),
    (full(metrics=[{"type": "gpu_util"}]), "spec.metrics[0].targetValue", "required"),
    (
        full(
            metrics=[
                {
                    "type": "gpu",
                    "name": "a",
                    "target": {"type": "Utilization", "averageUtilization": 50},
                },
                {"type": "queue_depth", "name": "a", "targetValue": 1},
            ]
        ),
        "spec.metrics[1].name",
        "duplicate metric name 'a'",
    ),
    (full(behavior=[]), "spec.behavior", "expected an object"),
    (
        full(behavior={"scaleUp": {"selectPolicy": "Most"}}),
        "spec.behavior.scaleUp.selectPolicy",
        "must be Max, Min or Disabled",
    ),
    (
        full(behavior={"scaleDown": {"stabilizationWindowSeconds": -1}}),
        "spec.behavior.scaleDown.stabilizationWindowSeconds",
        "expected an integer >= 0",
    ),
    (
        full(behavior={"scaleDown": {"stabilizationWindowSeconds": 3601}}),
        "spec.behavior.scaleDown.stabilizationWindowSeconds",
        "0..3600",
    ),
    (
        full(behavior={"scaleUp": {"policies": []}}),
        "spec.behavior.scaleUp.policies",
        "non-empty list of {type: Pods | Percent",
    ),
    (
        full(
            behavior={
                "scaleUp": {"policies": [{"type": "Replicas", "value": 1, "periodSeconds": 15}]}
            }
        ),
        "spec.behavior.scaleUp.policies[0].type",
        "must be Pods or Percent",
    ),
    (
        full(
            behavior={"scaleUp": {"policies": [{"type": "Pods", "value": 0, "periodSeconds": 15}]}}
        ),
        "spec.behavior.scaleUp.policies[0].value",
        "expected an integer >= 1",
    ),
    (
        full(behavior={"scaleUp": {"policies": [{"type": "Pods", "value": 1}]}}),
        "spec.behavior.scaleUp.policies[0].periodSeconds",
        "required",
    ),
    (
        full(
            behavior={
                "scaleUp": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 1801}]}
            }
        ),
        "spec.behavior.scaleUp.policies[0].periodSeconds",
        "1..1800",
    ),
    (full(feasibility={"mode": "Strict"}), "spec.feasibility.mode", "must be Enforce or Observe"),
    (
        full(feasibility={"allowPending": -1}),
        "spec.feasibility.allowPending",
        "expected an integer >= 0",
    ),
]


@pytest.mark.parametrize(
    ("obj", "field", "words"), BAD, ids=[f"{field}-{i}" for i, (_, field, _) in enumerate(BAD)]
)
def test_bad_specs_name_the_field_and_the_expected_form(
    obj: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(obj)
    assert caught.value.field == field
    assert words in caught.value.message
    assert str(caught.value).startswith(f"{field}: ")
