"""The headroom scheduler pod, as e2e tests run it: the stock kube-scheduler with the shipped
profile (adapted to 1.20: apiVersion v1beta1, same fields; the extender's port; a Lease per test
module) and `headroom extender` (gunicorn) with the admin kubeconfig. GPU reports are written by
the test; the pods never run unless a test sets their status, as a kubelet would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from headroom import names
from headroom.kube import Kube, load_api_client
from headroom.localcluster import LocalCluster, Process, free_port
from headroom.state import GpuState, NodeReport, report_to_status
from tests.e2e import waiting

eventually = partial(waiting.eventually, timeout_seconds=60.0)
ROOT = Path(__file__).resolve().parents[2]
GI = 2**30
HEADROOM = Path(sys.executable).parent / "headroom"


def scheduler_config(extender_port: int, lease_name: str) -> dict[str, Any]:
    shipped = yaml.safe_load((ROOT / "manifests/extender/kube-scheduler-config.yaml").read_text())
    shipped["apiVersion"] = "kubescheduler.config.k8s.io/v1beta1"  # what 1.20 reads
    shipped["leaderElection"].update(resourceName=lease_name, resourceNamespace="kube-system")
    shipped["extenders"][0]["urlPrefix"] = f"http://127.0.0.1:{extender_port}"
    return dict(shipped)


@dataclass
class Stack:
    cluster: LocalCluster
    kube: Kube
    label: str  # nodes and pods of this module carry it, so other tests' nodes stay out
    port: int
    lease: str
    extender: subprocess.Popen[bytes] | None = None
    scheduler: Process | None = None
    log_path: Path | None = None
    extender_args: tuple[str, ...] = ()

    def start_extender(self) -> None:
        self.log_path = self.cluster.workdir / f"extender-{self.port}.log"
        with self.log_path.open("ab") as log:
            self.extender = subprocess.Popen(
                [str(HEADROOM), "extender", f"--bind=127.0.0.1:{self.port}",
                 f"--kubeconfig={self.cluster.kubeconfig}", "--staleness-seconds=600",
                 f"--leader-lease=kube-system/{self.lease}", "--no-access-log",
                 *self.extender_args],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        eventually(self.ready, timeout_seconds=60, what="the extender ready and leading")

    def ready(self) -> bool:
        import urllib.request  # noqa: PLC0415

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics",
                                        timeout=2) as response:
                text = response.read().decode()
        except OSError:
            return False
        return "headroom_extender_leader 1.0" in text

    def kill_extender(self) -> None:
        """SIGKILL the whole extender (gunicorn and its worker), as a crashed container."""
        if self.extender is not None:
            os.killpg(self.extender.pid, signal.SIGKILL)
            self.extender.wait(30)

    def add_node(self, name: str, gpu_totals_gi: list[float], *, group: str, used_gi: float = 0,
                 age_seconds: float = 0) -> None:
        capacity = {"cpu": "64", "memory": "512Gi", "pods": "200",
                    names.GPU_RESOURCE: str(len(gpu_totals_gi))}
        self.kube.request("POST", "/api/v1/nodes", body={
            "metadata": {"name": name, "labels": {"headroom-e2e": self.label,
                                                  "headroom-e2e-group": group}}})
        # A patch, not a PUT: kube-controller-manager annotates new Nodes meanwhile.
        self.kube.request("PATCH", f"/api/v1/nodes/{name}/status",
                          content_type="application/merge-patch+json",
                          body={"status": {"capacity": capacity, "allocatable": capacity,
                                           "conditions": [{"type": "Ready", "status": "True"}]}})
        self.report(name, gpu_totals_gi, used_gi=used_gi, age_seconds=age_seconds, create=True)

    def report(self, name: str, gpu_totals_gi: list[float], *, used_gi: float = 0,
               age_seconds: float = 0, create: bool = False) -> None:
        gpus = tuple(GpuState(index=i, uuid=f"GPU-{name}-{i}", model="test", healthy=True,
                              total_bytes=int(t * GI), used_bytes=int(used_gi * GI),
                              unattributed_bytes=int(used_gi * GI))
                     for i, t in enumerate(gpu_totals_gi))
        report = NodeReport(node_name=name, reported_at_unix_seconds=time.time() - age_seconds,
                            gpus=gpus)
        base = f"/apis/{names.GROUP_VERSION}/{names.GPUNODE_PLURAL}"
        if create:
            obj = self.kube.request("POST", base, body={
                "apiVersion": names.GROUP_VERSION, "kind": names.GPUNODE_KIND,
                "metadata": {"name": name}, "spec": {"nodeName": name}})
        else:
            obj = self.kube.request("GET", f"{base}/{name}")
        obj["status"] = report_to_status(report)
        self.kube.request("PUT", f"{base}/{name}/status", body=obj)

    def pod(self, namespace: str, name: str, *, memory: str, group: str,
            shared: bool = True) -> None:
        annotations = {names.GPU_MEMORY_ANNOTATION: memory}
        if shared:
            annotations[names.GPU_SHARING_ANNOTATION] = "true"
        self.kube.request("POST", f"/api/v1/namespaces/{namespace}/pods", body={
            "metadata": {"name": name, "annotations": annotations},
            "spec": {"schedulerName": names.SCHEDULER_NAME,
                     "nodeSelector": {"headroom-e2e": self.label,
                                      "headroom-e2e-group": group},
                     "containers": [{"name": "model", "image": "example.invalid/model"}]}})

    def pods(self, namespace: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.kube.request(
            "GET", f"/api/v1/namespaces/{namespace}/pods")["items"]
        return items


@contextmanager
def running_stack(cluster: LocalCluster, *,
                  extender_args: Sequence[str] = ()) -> Iterator[Stack]:
    label = uuid.uuid4().hex[:6]
    s = Stack(cluster, Kube(load_api_client(str(cluster.kubeconfig))), label, free_port(),
              lease=f"headroom-scheduler-{label}", extender_args=tuple(extender_args))
    s.scheduler = cluster.start_scheduler(scheduler_config(s.port, s.lease),
                                          name=f"headroom-scheduler-{label}")
    try:
        s.start_extender()  # it leads once it sees that scheduler holding the Lease
        yield s
    finally:
        s.kill_extender()
        if s.scheduler is not None:
            s.scheduler.stop()
            cluster.processes.pop(f"headroom-scheduler-{label}", None)
        cluster.kubectl("delete", "nodes", "-l", f"headroom-e2e={label}", "--wait=false",
                        check=False)
