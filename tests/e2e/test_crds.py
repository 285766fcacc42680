"""The CRDs on a real API server: the seed AIScaler is accepted, bad ones are refused with the
field named, and a GPUNode report round-trips through the status subresource."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from headroom import names
from headroom.report import GpuPod, GpuState, NodeReport, report_from_status, report_to_status
from kubeapi.client import ApiError, Kube
from tooling.localcluster import LocalCluster

ROOT = Path(__file__).resolve().parents[2]
GI = 2**30


def aiscaler(name: str, spec: str) -> str:
    return (
        f"apiVersion: {names.GROUP_VERSION}\nkind: AIScaler\n"
        f"metadata: {{name: {name}}}\nspec: {spec}\n"
    )


def test_the_seed_aiscaler_is_accepted(cluster: LocalCluster, namespace: str) -> None:
    seed = ROOT / "manifests" / "examples" / "seed-aiscaler.yaml"
    cluster.kubectl("apply", "-n", namespace, "-f", str(seed))
    got = json.loads(
        cluster.kubectl("get", "-n", namespace, "aiscaler", "llm-scaler", "-o", "json").stdout
    )
    assert got["spec"] == {
        "deploymentName": "llm-server",
        "metricType": "queue_depth",
        "targetValue": 10,
        "minReplicas": 1,
        "maxReplicas": 10,
    }
    columns = cluster.kubectl("get", "-n", namespace, "aiscalers").stdout.split("\n")[0].split()
    assert columns == ["NAME", "MIN", "MAX", "DESIRED", "FEASIBLE", "APPLIED", "LIMITED", "AGE"]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            "{deploymentName: m, metricType: queue_depth, minReplicas: 1, maxReplicas: 3}",
            ["spec.targetValue: Required value"],
        ),
        (
            "{deploymentName: m, metricType: queue_depth, targetValue: 5, minReplicas: -1, "
            "maxReplicas: 3}",
            ["spec.minReplicas", "greater than or equal to 0"],
        ),
        (
            "{metricType: queue_depth, targetValue: 5, maxReplicas: 3}",
            ["spec: Invalid value", "exactly one of spec.deploymentName and spec.scaleTargetRef"],
        ),
        ("{deploymentName: m, targetValue: 0, maxReplicas: 3}", ["spec.targetValue"]),
        # The cross-field rules (CEL in the CRD):
        (
            "{deploymentName: m, targetValue: 5, minReplicas: 5, maxReplicas: 3}",
            ["spec.minReplicas: Invalid value", "must be at most spec.maxReplicas"],
        ),
        (
            "{deploymentName: m, scaleTargetRef: {kind: Deployment, name: m}, targetValue: 5, "
            "maxReplicas: 3}",
            ["exactly one of spec.deploymentName and spec.scaleTargetRef"],
        ),
        (
            "{deploymentName: m, maxReplicas: 3, metrics: [{type: prometheus, query: q}]}",
            ["spec.metrics[0]: Invalid value", "each metric needs a target"],
        ),
        (
            "{deploymentName: m, maxReplicas: 3, metrics: [{type: queue_depth}]}",
            ["spec.metrics[0]", "each metric needs a target: targetValue for queue_depth"],
        ),
        (
            "{deploymentName: m, maxReplicas: 3, metrics: [{type: pods, metricName: q, "
            "target: {type: AverageValue, value: 3}}]}",
            ["spec.metrics[0].target", "AverageValue needs averageValue"],
        ),
        (
            "{deploymentName: m, targetValue: 5, maxReplicas: 3, metrics: [{type: gpu, target: "
            "{type: Utilization, averageUtilization: 60}}]}",
            ["spec.metrics: Invalid value", "or spec.metrics, not both"],
        ),
    ],
    ids=[
        "no-target-value",
        "negative-min-replicas",
        "no-scale-target",
        "zero-target-value",
        "min-above-max",
        "two-scale-targets",
        "metric-without-target",
        "shorthand-without-target-value",
        "target-without-its-value",
        "seed-and-metrics",
    ],
)
def test_a_bad_aiscaler_is_refused_naming_the_field(
    cluster: LocalCluster, namespace: str, spec: str, expected: list[str]
) -> None:
    result = cluster.kubectl(
        "apply", "-n", namespace, "-f", "-", check=False, input_text=aiscaler("bad", spec)
    )
    assert result.returncode != 0
    for words in expected:
        assert words in result.stderr, result.stderr


def test_a_gpunode_report_round_trips_through_the_status_subresource(
    cluster: LocalCluster, kube: Kube
) -> None:
    report = NodeReport(
        node_name="crd-node-1",
        reported_at_unix_seconds=1_700_000_000.0,
        gpus=(
            GpuState(
                index=0,
                uuid="GPU-1",
                model="NVIDIA L4",
                total_bytes=24 * GI,
                used_bytes=6 * GI,
                pods=(GpuPod("uid-9", 5 * GI, "ml", "m-0"),),
                unattributed_bytes=1 * GI,
                utilization_percent=40.0,
            ),
            GpuState(
                index=1,
                uuid="GPU-2",
                model="NVIDIA L4",
                total_bytes=24 * GI,
                used_bytes=0,
                healthy=False,
                reason="GPU is lost",
            ),
        ),
    )
    base = f"/apis/{names.GROUP_VERSION}/{names.GPUNODE_PLURAL}"
    created = kube.request(
        "POST",
        base,
        body={
            "apiVersion": names.GROUP_VERSION,
            "kind": names.GPUNODE_KIND,
            "metadata": {"name": report.node_name},
            "spec": {"nodeName": report.node_name},
        },
    )
    created["status"] = report_to_status(report)
    kube.request("PUT", f"{base}/{report.node_name}/status", body=created)
    stored = kube.request("GET", f"{base}/{report.node_name}")
    assert report_from_status(report.node_name, stored["status"]) == report
    table = cluster.kubectl("get", "gpunodes", report.node_name).stdout.splitlines()
    assert table[0].split() == ["NAME", "GPUS", "HEALTHY", "FREE", "LARGEST-FREE", "REPORTED"]
    assert table[1].split()[:5] == [report.node_name, "2", "1", "18Gi", "18Gi"]


def test_a_gpunode_status_with_a_negative_total_is_refused(kube: Kube) -> None:
    base = f"/apis/{names.GROUP_VERSION}/{names.GPUNODE_PLURAL}"
    created = kube.request(
        "POST",
        base,
        body={
            "apiVersion": names.GROUP_VERSION,
            "kind": names.GPUNODE_KIND,
            "metadata": {"name": "crd-node-bad"},
        },
    )
    created["status"] = {
        "schemaVersion": 1,
        "reportTime": "2024-01-01T00:00:00Z",
        "gpus": [{"index": 0, "uuid": "GPU-x", "totalBytes": -5, "usedBytes": 0}],
    }
    with pytest.raises(ApiError) as info:
        kube.request("PUT", f"{base}/crd-node-bad/status", body=created)
    assert info.value.status == 422
    assert "status.gpus[0].totalBytes" in str(info.value)
