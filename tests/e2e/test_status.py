"""`headroom status` against the real API server: the GPU table with reservations, JSON for
scripts, and the errors for no cluster, no permission and no CRDs."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

from headroom import dra, names
from headroom.report import GpuState, NodeReport, report_to_status
from kubeapi.client import Kube
from tooling.dra import claim_template, resource_slice
from tooling.localcluster import LocalCluster
from tooling.process import free_port

HEADROOM = Path(sys.executable).parent / "headroom"
GI = 2**30


def status(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HEADROOM), "status", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_the_table_shows_used_reserved_and_free_and_json_agrees(
    cluster: LocalCluster, kube: Kube, namespace: str
) -> None:
    node = f"status-{uuid.uuid4().hex[:6]}"
    kube.request("POST", "/api/v1/nodes", body={"metadata": {"name": node}})
    base = f"/apis/{names.GROUP_VERSION}/{names.GPUNODE_PLURAL}"
    obj = kube.request(
        "POST",
        base,
        body={
            "apiVersion": names.GROUP_VERSION,
            "kind": names.GPUNODE_KIND,
            "metadata": {"name": node},
        },
    )
    report = NodeReport(
        node_name=node,
        reported_at_unix_seconds=time.time(),
        gpus=(
            GpuState(
                index=0,
                uuid=f"GPU-{node}",
                model="A100",
                total_bytes=80 * GI,
                used_bytes=10 * GI,
                unattributed_bytes=10 * GI,
            ),
        ),
    )
    obj["status"] = report_to_status(report)
    kube.request("PUT", f"{base}/{node}/status", body=obj)
    # A pod bound to the node that the report does not show yet: 20Gi reserved.
    kube.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/pods",
        body={
            "metadata": {
                "name": "model",
                "annotations": {
                    names.GPU_MEMORY_ANNOTATION: "20Gi",
                    names.GPU_SHARING_ANNOTATION: "true",
                    names.ASSIGNED_GPUS_ANNOTATION: f"GPU-{node}",
                },
            },
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}]},
        },
    )
    kube.request(
        "POST",
        f"/apis/{names.GROUP_VERSION}/namespaces/{namespace}/aiscalers",
        body={
            "apiVersion": names.GROUP_VERSION,
            "kind": names.AISCALER_KIND,
            "metadata": {"name": "llm"},
            "spec": {
                "deploymentName": "llm",
                "metricType": "queue_depth",
                "targetValue": 5,
                "maxReplicas": 8,
            },
        },
    )
    kubeconfig = f"--kubeconfig={cluster.kubeconfig}"
    table = status(kubeconfig)
    assert table.returncode == 0, table.stderr
    row = next(line.split() for line in table.stdout.splitlines() if line.startswith(node))
    assert row == [node, "0", "A100", "80Gi", "10Gi", "20Gi", "50Gi", "yes", row[-1]]
    assert any(line.split()[:2] == [namespace, "llm"] for line in table.stdout.splitlines())
    data = json.loads(status(kubeconfig, "--output", "json").stdout)
    gpu = next(g for g in data["gpus"] if g["node"] == node)
    assert (gpu["reserved_bytes"], gpu["free_bytes"]) == (20 * GI, 50 * GI)
    assert {
        "namespace": namespace,
        "name": "llm",
        "desired": None,
        "feasible": None,
        "applied": None,
        "limited": "",
    } in data["aiscalers"]
    kube.request("DELETE", f"/api/v1/nodes/{node}")
    kube.request("DELETE", f"{base}/{node}")


def test_a_gpu_dra_allocated_shows_reserved(
    cluster: LocalCluster, kube: Kube, namespace: str
) -> None:
    """A ResourceSlice publishing the node's GPU and a claim allocated to it, for a pod not
    bound yet: `status` counts the GPU held, as the extender does."""
    node = f"status-dra-{uuid.uuid4().hex[:6]}"
    kube.request("POST", "/api/v1/nodes", body={"metadata": {"name": node}})
    base = f"/apis/{names.GROUP_VERSION}/{names.GPUNODE_PLURAL}"
    obj = kube.request(
        "POST",
        base,
        body={
            "apiVersion": names.GROUP_VERSION,
            "kind": names.GPUNODE_KIND,
            "metadata": {"name": node},
        },
    )
    gpus = tuple(
        GpuState(index=i, uuid=f"GPU-{node}-{i}", model="A100", total_bytes=80 * GI, used_bytes=0)
        for i in range(2)
    )
    obj["status"] = report_to_status(
        NodeReport(node_name=node, reported_at_unix_seconds=time.time(), gpus=gpus)
    )
    kube.request("PUT", f"{base}/{node}/status", body=obj)
    resource = f"/apis/{dra.GROUP_VERSION}"
    slice_obj = resource_slice(node, [(g.uuid, g.total_bytes) for g in gpus])
    kube.request("POST", f"{resource}/resourceslices", body=slice_obj)
    claims = f"{resource}/namespaces/{namespace}/resourceclaims"
    claim = kube.request(
        "POST",
        claims,
        body={
            "apiVersion": dra.GROUP_VERSION,
            "kind": "ResourceClaim",
            "metadata": {"name": "model-gpu"},
            "spec": claim_template("t")["spec"]["spec"],
        },
    )
    result = {"request": "gpu", "driver": dra.NVIDIA_GPU_DRIVER, "pool": node, "device": "gpu-1"}
    claim["status"] = {"allocation": {"devices": {"results": [result]}}}
    kube.request("PUT", f"{claims}/model-gpu/status", body=claim)
    try:
        data = json.loads(status(f"--kubeconfig={cluster.kubeconfig}", "-o", "json").stdout)
        rows = {g["gpu"]: g for g in data["gpus"] if g["node"] == node}
        assert (rows[0]["reserved_bytes"], rows[0]["free_bytes"]) == (0, 80 * GI)
        assert (rows[1]["reserved_bytes"], rows[1]["free_bytes"]) == (80 * GI, 0)
    finally:
        kube.request("DELETE", f"{resource}/resourceslices/{slice_obj['metadata']['name']}")
        kube.request("DELETE", f"/api/v1/nodes/{node}")
        kube.request("DELETE", f"{base}/{node}")


def kubeconfig_with(
    tmp_path: Path, cluster: LocalCluster, *, server: str, token: str | None = None
) -> str:
    config: dict[str, Any] = yaml.safe_load(cluster.kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = server
    if token is not None:
        config["users"][0]["user"] = {"token": token}
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_no_cluster_is_a_clear_error(cluster: LocalCluster, tmp_path: Path) -> None:
    config = kubeconfig_with(tmp_path, cluster, server=f"https://127.0.0.1:{free_port()}")
    result = status(f"--kubeconfig={config}")
    assert result.returncode == 1
    assert result.stderr.startswith("headroom status: error: cannot reach the cluster")


def test_no_permission_is_a_clear_error(
    cluster: LocalCluster, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    kube.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/serviceaccounts",
        body={"metadata": {"name": "nobody"}},
    )
    token = cluster.service_account_token(namespace, "nobody")
    config = kubeconfig_with(tmp_path, cluster, server=cluster.server_url, token=token)
    result = status(f"--kubeconfig={config}")
    assert result.returncode == 1
    assert result.stderr.startswith("headroom status: error: no permission to read")


def test_no_crds_is_a_clear_error(tmp_path: Path) -> None:
    with LocalCluster(tmp_path / "bare") as bare:
        result = status(f"--kubeconfig={bare.kubeconfig}")
    assert result.returncode == 1
    assert "Headroom's CRDs are not installed" in result.stderr
