"""The AIScaler e2e scene of tests/e2e/test_scaler.py: a kubelet stand-in that runs the bound pods
(status Running, Ready, an IP) and completes deletions, the scene a test reads the AIScaler, its
Deployment's scale and its events through, and the Deployment and AIScaler the tests create."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from headroom import names
from headroom.clock import format_time
from kubeapi.client import ApiError, Kube
from tests.e2e.dra_nodes import claim_spec
from tests.e2e.stack import Stack
from tests.extender.scaler.standins import ModelServer

AISCALERS = f"/apis/{names.GROUP_VERSION}/namespaces/{{namespace}}/{names.AISCALER_PLURAL}"


class Kubelet:
    """Runs the namespace's bound pods as a kubelet would, and finishes their deletion.
    `start(pod)` gives the IP a bound pod runs with, or None to leave it Pending (a slow node)."""

    def __init__(
        self,
        kube: Kube,
        namespace: str,
        *,
        start: Callable[[dict[str, Any]], str | None] = lambda pod: "127.0.0.1",
    ) -> None:
        self.kube, self.namespace, self.start = kube, namespace, start
        self.started: set[str] = set()
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.3):
            try:
                self.sync()
            except ApiError:
                pass  # the next pass retries, as a kubelet would
            except OSError as exc:  # a stand-in that cannot listen: the test reports it
                self.errors.append(repr(exc))

    def sync(self) -> None:
        base = f"/api/v1/namespaces/{self.namespace}/pods"
        for pod in self.kube.request("GET", base)["items"]:
            name, spec = pod["metadata"]["name"], pod["spec"]
            if pod["metadata"].get("deletionTimestamp"):
                self.kube.request("DELETE", f"{base}/{name}", body={"gracePeriodSeconds": 0})
            elif spec.get("nodeName") and name not in self.started:
                ip = self.start(pod)
                if ip is None:
                    continue
                self.kube.request(
                    "PATCH",
                    f"{base}/{name}/status",
                    content_type="application/merge-patch+json",
                    body={
                        "status": {
                            "phase": "Running",
                            "podIP": ip,
                            # As a kubelet writes it: the cold start counts to this moment.
                            "conditions": [
                                {
                                    "type": "Ready",
                                    "status": "True",
                                    "lastTransitionTime": format_time(time.time()),
                                }
                            ],
                        }
                    },
                )
                self.started.add(name)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


@dataclass
class Scene:
    stack: Stack
    namespace: str
    servers: list[ModelServer]
    prometheus_port: int
    target: str = "model"
    scaler_name: str = "model"

    def load(self, total: float) -> None:
        """The queue the model servers report, split between them."""
        for server in self.servers:
            server.waiting = total / len(self.servers) - 1  # each also reports a lora queue of 1

    def scaler(self) -> dict[str, Any]:
        return self.stack.kube.request(
            "GET", AISCALERS.format(namespace=self.namespace) + f"/{self.scaler_name}"
        )

    def condition(self, kind: str) -> dict[str, Any]:
        for cond in self.scaler().get("status", {}).get("conditions") or []:
            if cond["type"] == kind:
                return dict(cond)
        return {}

    def replicas(self) -> int:
        scale = self.stack.kube.request(
            "GET", f"/apis/apps/v1/namespaces/{self.namespace}/deployments/{self.target}/scale"
        )
        return int(scale["spec"].get("replicas") or 0)

    def events(self) -> list[str]:
        items = self.stack.kube.request(
            "GET",
            f"/api/v1/namespaces/{self.namespace}/events",
            query={"fieldSelector": "involvedObject.kind=AIScaler"},
        )["items"]
        return [f"{e['reason']}: {e['message']}" for e in items]


@dataclass
class Environment:
    stack: Stack
    servers: list[ModelServer]
    prometheus_port: int


def deployment(
    label: str, *, group: str = "scaler", dra: bool = False, name: str = "model", replicas: int = 1
) -> dict[str, Any]:
    """The model: one whole GPU with 20Gi per replica, only on this module's nodes of `group`
    (pods an earlier test left bound elsewhere must not change this test's capacity). With `dra`
    the GPU comes from a claim made from `tests.e2e.dra_nodes.TEMPLATE`, not the device plugin."""
    labels = {"app": f"{name}-{label}"}
    container = {"name": "model", "image": "example.invalid/model"}
    gpu: dict[str, Any] = (
        claim_spec([container])
        if dra
        else {"containers": [{**container, "resources": {"limits": {names.GPU_RESOURCE: "1"}}}]}
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {names.GPU_MEMORY_ANNOTATION: "20Gi"},
                },
                "spec": {
                    "schedulerName": names.SCHEDULER_NAME,
                    "nodeSelector": {"headroom-e2e": label, "headroom-e2e-group": group},
                    **gpu,
                },
            },
        },
    }


def aiscaler(query: str) -> dict[str, Any]:
    return {
        "apiVersion": names.GROUP_VERSION,
        "kind": names.AISCALER_KIND,
        "metadata": {"name": "model"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "model"},
            "minReplicas": 1,
            "maxReplicas": 8,
            "pollingInterval": 1,
            "metrics": [
                {
                    "type": "prometheus",
                    "query": query,
                    "target": {"type": "AverageValue", "averageValue": 10},
                }
            ],
            # Quick steps, so the test is not paced by HPA's default 15 s periods.
            "behavior": {
                "scaleUp": {"policies": [{"type": "Pods", "value": 10, "periodSeconds": 1}]},
                "scaleDown": {"stabilizationWindowSeconds": 5},
            },
        },
    }
