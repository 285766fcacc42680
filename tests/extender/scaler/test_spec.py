"""AIScaler spec parsing: the seed form exactly as shipped, the full form, and defaults (the
errors are in test_spec_errors.py)."""

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
    (
        "minReplicas 0 with a metric that does not come from the pods",
        full(minReplicas=0),
        lambda s: s.min_replicas == 0 and s.scale_to_zero.idle_seconds == 300,
    ),
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
