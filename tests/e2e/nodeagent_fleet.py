"""The node agents of tests/e2e/test_nodeagent.py as the test drives them: an agent process (its
/metrics, its clean stop), the agent's identity from manifests/nodeagent/ with a token bound to an
agent pod on its node, each node's fake GPUs, and the fleet's GPUNodes as the API server has
them."""

from __future__ import annotations

import signal
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from headroom import names
from kubeapi.client import ApiError, Kube
from tooling.fakenvml import GIB, FakeNvml, device
from tooling.localcluster import LocalCluster

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests" / "nodeagent"
GPUNODES = f"/apis/{names.GROUP_VERSION}/{names.GPUNODE_PLURAL}"


@dataclass
class Agent:
    node: str
    state: FakeNvml
    port: int
    log_path: Path
    popen: subprocess.Popen[bytes]

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-30:])

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.port}{path}", timeout=5
            ) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def metric(self, name: str, **labels: str) -> float:
        for family in text_string_to_metric_families(self.get("/metrics")[1]):
            for sample in family.samples:
                if sample.name == name and labels.items() <= sample.labels.items():
                    return float(sample.value)
        raise AssertionError(f"{name} {labels} not in /metrics of {self.node}")

    def stop(self) -> int | None:
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(15)
                return None
        return self.popen.returncode


def install_agent_identity(cluster: LocalCluster) -> None:
    """The ServiceAccount, RBAC and admission policy, from the manifests as shipped."""
    cluster.kubectl(
        "apply",
        "-f",
        str(MANIFESTS / "serviceaccount.yaml"),
        "-f",
        str(MANIFESTS / "rbac.yaml"),
        "-f",
        str(MANIFESTS / "admission-policy.yaml"),
    )


def agent_pod_token(
    cluster: LocalCluster, kube: Kube, node: str, *, pod_name: str | None = None
) -> str:
    """A token of the agent's account bound to an agent pod on `node`, as the kubelet mounts it
    into the DaemonSet's pod there (the pod never runs: no kubelet)."""
    pod = kube.request(
        "POST",
        f"/api/v1/namespaces/{names.SYSTEM_NAMESPACE}/pods",
        body={
            "metadata": {"name": pod_name or f"headroom-nodeagent-{node}"},
            "spec": {
                "nodeName": node,
                "serviceAccountName": "headroom-nodeagent",
                "containers": [{"name": "agent", "image": "example.invalid/headroom"}],
            },
        },
    )
    return cluster.service_account_token(
        names.SYSTEM_NAMESPACE,
        "headroom-nodeagent",
        bound_pod={"name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]},
    )


def node_state(index: int) -> list[Any]:
    pid = 5000 + index
    return [device(0, used=6 * GIB, processes=[{"pid": pid, "used": 5 * GIB}]), device(1, used=0)]


@dataclass
class Fleet:
    kube: Kube
    agents: list[Agent]
    proc_root: Path

    def gpunode(self, node: str) -> dict[str, Any] | None:
        try:
            return self.kube.request("GET", f"{GPUNODES}/{node}")
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def status(self, node: str) -> dict[str, Any]:
        return (self.gpunode(node) or {}).get("status") or {}

    def logs(self) -> str:
        return "\n".join(f"--- {a.node}\n{a.log_tail()}" for a in self.agents)
