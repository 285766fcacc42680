"""The headroom scheduler pod, as e2e tests run it: the stock kube-scheduler with the shipped
profile (only the extender's address and the kubeconfig path filled in, `tooling.shipped`) and
`headroom extender` (gunicorn) with the admin kubeconfig, following the shipped Lease. GPU reports
are written by the test; the pods never run unless a test sets their status, as a kubelet would."""

from __future__ import annotations

import contextlib
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

from headroom import names
from headroom.report import GpuState, NodeReport, report_to_status
from kubeapi.client import ApiError, Kube, load_api_client
from tests.e2e import waiting
from tooling import shipped
from tooling.localcluster import LocalCluster
from tooling.process import Process, die_with_parent, free_port, secure_get

eventually = partial(waiting.eventually, timeout_seconds=60.0)
ROOT = Path(__file__).resolve().parents[2]
GI = 2**30
HEADROOM = Path(sys.executable).parent / "headroom"


def scheduler_config(cluster: LocalCluster, extender_port: int) -> dict[str, Any]:
    return shipped.scheduler_config(
        extender_url=f"http://127.0.0.1:{extender_port}", kubeconfig=cluster.kubeconfig
    )


def shipped_lease() -> tuple[str, str]:
    election = shipped.load(shipped.SCHEDULER_CONFIG)["leaderElection"]
    return election["resourceNamespace"], election["resourceName"]


def release_lease(kube: Kube) -> None:
    """Delete the scheduler's Lease once its holder is stopped, so the next test module's
    scheduler takes it at once instead of waiting for it to expire."""
    namespace, name = shipped_lease()
    try:
        kube.request("DELETE", f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}")
    except ApiError as exc:
        if exc.status != 404:
            raise


def gpu_uuid(node_name: str, index: int) -> str:
    """The UUID a test node's GPU has in its reports (and in its ResourceSlice, for DRA)."""
    return f"GPU-{node_name}-{index}"


@dataclass
class Stack:
    cluster: LocalCluster
    kube: Kube
    label: str  # nodes and pods of this module carry it, so other tests' nodes stay out
    port: int
    extender: subprocess.Popen[bytes] | None = None
    scheduler: Process | None = None
    log_path: Path | None = None
    extender_args: tuple[str, ...] = ()
    hostname: str | None = None  # the "pod" both run in: the Lease holder's name

    def start_scheduler(self) -> None:
        name = f"headroom-scheduler-{self.label}-{self.hostname or 'host'}"
        self.scheduler = self.cluster.start_scheduler(
            scheduler_config(self.cluster, self.port), name=name, hostname=self.hostname
        )

    def start_extender(self, *, wait_leading: bool = True) -> None:
        self.log_path = self.cluster.workdir / f"extender-{self.port}.log"
        identity = [f"--identity={self.hostname}"] if self.hostname else []
        with self.log_path.open("ab") as log:
            self.extender = subprocess.Popen(
                [
                    str(HEADROOM),
                    "extender",
                    f"--bind=127.0.0.1:{self.port}",
                    f"--kubeconfig={self.cluster.kubeconfig}",
                    "--staleness-seconds=600",
                    "--leader-lease={}/{}".format(*shipped_lease()),
                    "--no-access-log",
                    *identity,
                    *self.extender_args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # Killed with the test run, even one stopped hard, as the control plane is.
                preexec_fn=die_with_parent,  # noqa: PLW1509 - started from the main thread
            )
        if wait_leading:
            eventually(self.ready, timeout_seconds=60, what="the extender ready and leading")

    def metric(self, name: str) -> float | None:
        """A sample of the extender's /metrics (the first series of that name), None if down."""
        import urllib.request  # noqa: PLC0415

        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.port}/metrics", timeout=2
            ) as response:
                text = response.read().decode()
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith((f"{name} ", f"{name}{{")):
                return float(line.rsplit(" ", 1)[1])
        return None

    def scheduler_queue(self) -> dict[str, float]:
        """The scheduler's pending pods by queue (active, backoff, unschedulable, gated)."""
        assert self.scheduler is not None and self.scheduler.port is not None
        text = secure_get(self.scheduler.port, "/metrics").decode()
        queues: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("scheduler_pending_pods{"):
                labels, value = line.rsplit(" ", 1)
                queue = labels.split('queue="', 1)[1].split('"', 1)[0]
                queues[queue] = queues.get(queue, 0.0) + float(value)
        return queues

    def ready(self) -> bool:
        return self.metric("headroom_extender_leader") == 1.0

    def stop(self) -> None:
        """Stop this pair and release the Lease; remove the module's nodes."""
        self.kill_extender()
        stop_process(self.cluster, self.scheduler)
        release_lease(self.kube)
        self.cluster.kubectl(
            "delete", "nodes", "-l", f"headroom-e2e={self.label}", "--wait=false", check=False
        )

    def kill_extender(self) -> None:
        """SIGKILL the whole extender (gunicorn and its worker), as a crashed container."""
        if self.extender is not None:
            with contextlib.suppress(ProcessLookupError):  # already gone
                os.killpg(self.extender.pid, signal.SIGKILL)
            self.extender.wait(30)

    def add_node(
        self,
        name: str,
        gpu_totals_gi: list[float],
        *,
        group: str,
        used_gi: float = 0,
        age_seconds: float = 0,
        used_per_gpu_gi: Sequence[float] | None = None,
    ) -> None:
        capacity = {
            "cpu": "64",
            "memory": "512Gi",
            "pods": "200",
            names.GPU_RESOURCE: str(len(gpu_totals_gi)),
        }
        self.kube.request(
            "POST",
            "/api/v1/nodes",
            body={
                "metadata": {
                    "name": name,
                    "labels": {"headroom-e2e": self.label, "headroom-e2e-group": group},
                }
            },
        )
        # A patch, not a PUT: kube-controller-manager annotates new Nodes meanwhile.
        self.kube.request(
            "PATCH",
            f"/api/v1/nodes/{name}/status",
            content_type="application/merge-patch+json",
            body={
                "status": {
                    "capacity": capacity,
                    "allocatable": capacity,
                    "conditions": [{"type": "Ready", "status": "True"}],
                }
            },
        )
        self.report(
            name,
            gpu_totals_gi,
            used_gi=used_gi,
            age_seconds=age_seconds,
            create=True,
            used_per_gpu_gi=used_per_gpu_gi,
        )

    def report(
        self,
        name: str,
        gpu_totals_gi: list[float],
        *,
        used_gi: float = 0,
        age_seconds: float = 0,
        create: bool = False,
        used_per_gpu_gi: Sequence[float] | None = None,
        unhealthy: Sequence[int] = (),
    ) -> None:
        """Write the node's GPUNode report as its agent would: GPU i is `GPU-<node>-<i>`, with
        `used_gi` (or `used_per_gpu_gi[i]`) in use by processes of no pod."""
        used = used_per_gpu_gi or [used_gi] * len(gpu_totals_gi)
        gpus = tuple(
            GpuState(
                index=i,
                uuid=gpu_uuid(name, i),
                model="test",
                healthy=i not in unhealthy,
                reason="lost" if i in unhealthy else "",
                total_bytes=int(t * GI),
                used_bytes=int(used[i] * GI),
                unattributed_bytes=int(used[i] * GI),
            )
            for i, t in enumerate(gpu_totals_gi)
        )
        report = NodeReport(
            node_name=name, reported_at_unix_seconds=time.time() - age_seconds, gpus=gpus
        )
        base = f"/apis/{names.GROUP_VERSION}/{names.GPUNODE_PLURAL}"
        if create:
            obj = self.kube.request(
                "POST",
                base,
                body={
                    "apiVersion": names.GROUP_VERSION,
                    "kind": names.GPUNODE_KIND,
                    "metadata": {"name": name},
                    "spec": {"nodeName": name},
                },
            )
        else:
            obj = self.kube.request("GET", f"{base}/{name}")
        obj["status"] = report_to_status(report)
        self.kube.request("PUT", f"{base}/{name}/status", body=obj)

    def pod(
        self,
        namespace: str,
        name: str,
        *,
        memory: str,
        group: str,
        shared: bool = True,
        priority_class: str | None = None,
        claim: str | None = None,
    ) -> None:
        """A pod of the headroom scheduler on this module's `group` of nodes; `claim` mounts
        that PersistentVolumeClaim."""
        annotations = {names.GPU_MEMORY_ANNOTATION: memory}
        if shared:
            annotations[names.GPU_SHARING_ANNOTATION] = "true"
        spec: dict[str, Any] = {
            "schedulerName": names.SCHEDULER_NAME,
            "nodeSelector": {"headroom-e2e": self.label, "headroom-e2e-group": group},
            "containers": [{"name": "model", "image": "example.invalid/model"}],
        }
        if priority_class:
            spec["priorityClassName"] = priority_class
        if claim:
            spec["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]
        self.kube.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/pods",
            body={"metadata": {"name": name, "annotations": annotations}, "spec": spec},
        )

    def pods(self, namespace: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.kube.request(
            "GET", f"/api/v1/namespaces/{namespace}/pods"
        )["items"]
        return items


@contextmanager
def running_stack(cluster: LocalCluster, *, extender_args: Sequence[str] = ()) -> Iterator[Stack]:
    label = uuid.uuid4().hex[:6]
    s = Stack(
        cluster,
        Kube(load_api_client(str(cluster.kubeconfig))),
        label,
        free_port(),
        extender_args=tuple(extender_args),
    )
    s.start_scheduler()
    try:
        s.start_extender()  # it leads once it sees that scheduler holding the Lease
        yield s
    finally:
        s.stop()


def stop_process(cluster: LocalCluster, process: Process | None) -> None:
    if process is not None:
        process.stop()
        cluster.processes.pop(process.name, None)
