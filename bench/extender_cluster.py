"""The cluster side of bench/extender.py, shared with bench/requeue.py and bench/scaler.py:
synthetic GPUNode reports and bound pods, Node objects with their GPUNodes on a real API server,
pods created and timed until bound, `headroom extender` with the shipped kube-scheduler profile
started as installed (and its server time per verb), and the p99 and Markdown table the
benchmarks print."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from headroom import names
from headroom.report import GpuPod, GpuState, NodeReport, report_to_status
from kubeapi.client import ApiError, Kube
from tooling import shipped
from tooling.localcluster import LocalCluster
from tooling.process import Process, free_port

GI = 2**30
GPUS_PER_NODE = 8


def gpunode(name: str, rng: random.Random, now: float) -> dict[str, Any]:
    gpus = []
    for i in range(GPUS_PER_NODE):
        pods = (GpuPod(f"{name}-p{i}", 20 * GI),) if rng.random() < 0.3 else ()
        other = rng.choice([0, 0, 10, 40]) * GI
        gpus.append(
            GpuState(
                index=i,
                uuid=f"GPU-{name}-{i}",
                model="A100",
                total_bytes=80 * GI,
                used_bytes=other + sum(p.used_bytes for p in pods),
                pods=pods,
                unattributed_bytes=other,
            )
        )
    report = NodeReport(node_name=name, reported_at_unix_seconds=now, gpus=tuple(gpus))
    return {"metadata": {"name": name}, "status": report_to_status(report)}


def bound_pod(uid: str, node: str, gpu: str) -> dict[str, Any]:
    return {
        "metadata": {
            "uid": uid,
            "name": uid,
            "namespace": "ml",
            "annotations": {
                names.GPU_MEMORY_ANNOTATION: "20Gi",
                names.GPU_SHARING_ANNOTATION: "true",
                names.ASSIGNED_GPUS_ANNOTATION: gpu,
            },
        },
        "spec": {"nodeName": node, "containers": [{"name": "c"}]},
        "status": {"phase": "Running"},
    }


def p99(samples: list[float]) -> float:
    return sorted(samples)[max(0, int(len(samples) * 0.99) - 1)]


# -- (b) the real scheduler ------------------------------------------------------------------------
def add_nodes(kube: Kube, count: int) -> None:
    capacity = {"cpu": "64", "memory": "512Gi", "pods": "200", names.GPU_RESOURCE: "8"}
    rng = random.Random(7)
    base = f"/apis/{names.GROUP_VERSION}/{names.GPUNODE_PLURAL}"
    for i in range(count):
        name = f"bench-{i}"
        kube.request("POST", "/api/v1/nodes", body={"metadata": {"name": name}})
        kube.request(
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
        obj = kube.request(
            "POST",
            base,
            body={
                "apiVersion": names.GROUP_VERSION,
                "kind": names.GPUNODE_KIND,
                "metadata": {"name": name},
            },
        )
        obj["status"] = gpunode(name, rng, time.time())["status"]
        kube.request("PUT", f"{base}/{name}/status", body=obj)


def schedule(kube: Kube, scheduler_name: str, namespace: str, pods: int) -> float:
    """Pods per second from the first create to the last pod bound."""
    kube.request("POST", "/api/v1/namespaces", body={"metadata": {"name": namespace}})
    while True:  # pods can be created once the namespace's default account exists
        try:
            kube.request("GET", f"/api/v1/namespaces/{namespace}/serviceaccounts/default")
            break
        except ApiError:
            time.sleep(0.1)
    start = time.monotonic()
    for i in range(pods):
        kube.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/pods",
            body={
                "metadata": {
                    "name": f"p{i}",
                    "annotations": {
                        names.GPU_MEMORY_ANNOTATION: "10Gi",
                        names.GPU_SHARING_ANNOTATION: "true",
                    },
                },
                "spec": {
                    "schedulerName": scheduler_name,
                    "containers": [{"name": "c", "image": "example.invalid/model"}],
                },
            },
        )
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        items = kube.request("GET", f"/api/v1/namespaces/{namespace}/pods")["items"]
        if sum(bool(p["spec"].get("nodeName")) for p in items) == pods:
            return pods / (time.monotonic() - start)
        time.sleep(0.05)
    raise RuntimeError(f"{scheduler_name}: pods not all bound within 600s")


@contextlib.contextmanager
def headroom_scheduler(cluster: LocalCluster) -> Iterator[tuple[int, Process]]:
    """`headroom extender` and the shipped kube-scheduler profile calling it, as installed;
    yields the extender's port and the scheduler, once the extender leads."""
    port = free_port()
    election = shipped.load(shipped.SCHEDULER_CONFIG)["leaderElection"]
    extender = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "headroom"),
            "extender",
            f"--bind=127.0.0.1:{port}",
            f"--kubeconfig={cluster.kubeconfig}",
            "--staleness-seconds=3600",
            "--no-access-log",
            "--log-level=warning",
            f"--leader-lease={election['resourceNamespace']}/{election['resourceName']}",
        ],
        start_new_session=True,
    )
    try:
        wait_ready(port)
        scheduler = cluster.start_scheduler(
            shipped.scheduler_config(
                extender_url=f"http://127.0.0.1:{port}", kubeconfig=cluster.kubeconfig
            ),
            name="headroom-scheduler",
        )
        wait_leading(port)  # it follows the scheduler's Lease, polled each second
        yield port, scheduler
    finally:
        os.killpg(extender.pid, signal.SIGTERM)
        extender.wait(30)


def server_times(port: int) -> str:
    """Mean server time per verb during the run, from the extender's own histogram."""
    import urllib.request  # noqa: PLC0415

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for line in text.splitlines():
        for kind, into in (("_sum", sums), ("_count", counts)):
            prefix = f'headroom_extender_verb_seconds{kind}{{verb="'
            if line.startswith(prefix):
                verb = line[len(prefix) :].split('"', 1)[0]
                into[verb] = float(line.rsplit(" ", 1)[1])
    return ", ".join(
        f"{v} {1000 * sums[v] / counts[v]:.1f} ms" for v in sorted(counts) if counts[v]
    )


def wait_ready(port: int) -> None:
    """Ready: its caches synced (the scheduler it follows is not started yet)."""
    import urllib.request  # noqa: PLC0415

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the extender did not become ready")


def wait_leading(port: int) -> None:
    import urllib.request  # noqa: PLC0415

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            if b"headroom_extender_leader 1.0" in response.read():
                return
        time.sleep(0.2)
    raise RuntimeError("the extender did not start leading")


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
