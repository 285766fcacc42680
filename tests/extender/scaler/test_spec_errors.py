"""AIScaler spec parsing errors: each bad spec names the field and the expected form."""

from __future__ import annotations

from typing import Any

import pytest

from extender.scaler.spec import SpecError, parse_spec
from tests.extender.scaler.test_spec import full, seed

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
