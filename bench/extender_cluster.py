"""The cluster side of bench/scheduler.py and bench/extender.py, shared with bench/requeue.py and
the scaler benchmarks: synthetic GPUNode reports and bound pods, Node objects with their GPUNodes
on a real API server, batches of pods created and timed until a watch sees them bound (the
scheduler optionally held while they are created), `headroom extender` started with the shipped
Deployment's flags and the shipped kube-scheduler profile calling it (and its server time per
verb), and the p99 and Markdown table the benchmarks print."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from headroom import names
from headroom.report import GpuPod, GpuState, NodeReport, report_to_status
from kubeapi.client import ApiError, Kube, WatchStream
from tooling import shipped
from tooling.localcluster import LocalCluster
from tooling.process import Process, free_port
from tooling.waiting import poll

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


# -- the real scheduler ----------------------------------------------------------------------------
NODE_CAPACITY = {"cpu": "64", "memory": "512Gi", "pods": "200", names.GPU_RESOURCE: "8"}


def add_nodes(kube: Kube, count: int, *, threads: int = 8) -> None:
    """`count` Ready Nodes named bench-0... with their GPUNode reports, `threads` at a time."""
    rng = random.Random(7)
    reports = [gpunode(f"bench-{i}", rng, time.time())["status"] for i in range(count)]
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda i: _add_node(kube, f"bench-{i}", reports[i]), range(count)))


def _add_node(kube: Kube, name: str, report: dict[str, Any]) -> None:
    # A Node takes its status on create (a kubelet registers so); a GPUNode's goes to /status.
    status = {
        "capacity": NODE_CAPACITY,
        "allocatable": NODE_CAPACITY,
        "conditions": [{"type": "Ready", "status": "True"}],
    }
    kube.request("POST", "/api/v1/nodes", body={"metadata": {"name": name}, "status": status})
    base = f"/apis/{names.GROUP_VERSION}/{names.GPUNODE_PLURAL}"
    obj = kube.request(
        "POST",
        base,
        body={
            "apiVersion": names.GROUP_VERSION,
            "kind": names.GPUNODE_KIND,
            "metadata": {"name": name},
        },
    )
    obj["status"] = report
    kube.request("PUT", f"{base}/{name}/status", body=obj)


@dataclass(frozen=True)
class Batch:
    """One batch of pods placed by one scheduler."""

    pods: int
    seconds: float  # from the clock's start (see run_batch) to the last pod seen bound
    created_seconds: float  # from the first create sent to the last one answered
    held: bool = False  # the scheduler was stopped while the pods were created

    @property
    def pods_per_second(self) -> float:
        return self.pods / self.seconds


class Hold:
    """Keeps a scheduler process stopped (SIGSTOP) while a batch's pods are created, for
    `max_seconds` at most: long enough for the creates, short of its leader Lease's renew
    deadline (10 s by default), past which a scheduler that leads would exit on waking.
    `release()` (again at once if it was already released) answers when it was."""

    def __init__(self, pid: int, *, max_seconds: float = 6.0) -> None:
        self.pid = pid
        self.released_at: float | None = None
        self._lock = threading.Lock()
        os.kill(pid, signal.SIGSTOP)
        self._timer = threading.Timer(max_seconds, self.release)
        self._timer.start()

    def release(self) -> float:
        with self._lock:
            if self.released_at is None:
                self._timer.cancel()
                os.kill(self.pid, signal.SIGCONT)
                self.released_at = time.monotonic()
            return self.released_at


def run_batch(
    kube: Kube,
    *,
    scheduler_name: str,
    namespace: str,
    pods: int,
    creators: int = 4,
    hold_pid: int | None = None,
) -> Batch:
    """Create `pods` GPU pods for `scheduler_name` in a new `namespace` from `creators` threads
    and time them until a watch has seen every one bound: from the first create, or, with
    `hold_pid` (the scheduler's process, stopped while the pods are created), from the moment it
    resumes with the pods queued, so that the batch times the scheduler and not the creates."""
    make_namespace(kube, namespace)
    watch = BoundWatch(kube, namespace, expected=pods)
    hold = None if hold_pid is None else Hold(hold_pid)
    start = time.monotonic()
    try:
        with ThreadPoolExecutor(creators) as pool:
            list(
                pool.map(
                    lambda i: create_pod(kube, namespace, f"p{i}", scheduler_name), range(pods)
                )
            )
        created = time.monotonic() - start
        if hold is not None:
            start = hold.release()
        done_at = watch.wait(timeout_seconds=600)
    finally:
        if hold is not None:
            hold.release()
        watch.stop()
    if done_at is None:
        raise RuntimeError(f"{scheduler_name}: {pods} pods not all bound within 600s")
    return Batch(pods=pods, seconds=done_at - start, created_seconds=created, held=hold is not None)


def make_namespace(kube: Kube, namespace: str) -> None:
    """A namespace pods can be created in: its default ServiceAccount exists."""
    kube.request("POST", "/api/v1/namespaces", body={"metadata": {"name": namespace}})
    account = f"/api/v1/namespaces/{namespace}/serviceaccounts/default"
    if not poll(lambda: bool(kube.request("GET", account)), timeout_seconds=60, ignore=(ApiError,)):
        raise RuntimeError(f"{namespace}: no default ServiceAccount within 60s")


def create_pod(kube: Kube, namespace: str, name: str, scheduler_name: str) -> None:
    kube.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/pods",
        body={
            "metadata": {
                "name": name,
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


class BoundWatch:
    """Watches one namespace's pods from a thread until `expected` of them are bound; `wait()`
    answers when (time.monotonic()) that was. A watch costs the API server far less than listing
    the pods again and again would, and it does not grow with the time a batch takes."""

    def __init__(self, kube: Kube, namespace: str, *, expected: int) -> None:
        self.kube, self.path, self.expected = kube, f"/api/v1/namespaces/{namespace}/pods", expected
        self.bound: set[str] = set()
        self.done = threading.Event()
        self.done_at: float | None = None
        self.stream: WatchStream | None = None
        self.resource_version = self._list()
        self.thread = threading.Thread(target=self._run, name="bound-watch", daemon=True)
        self.thread.start()

    def wait(self, *, timeout_seconds: float) -> float | None:
        self.done.wait(timeout_seconds)
        return self.done_at

    def stop(self) -> None:
        self.done.set()
        if self.stream is not None:
            self.stream.close()
        self.thread.join(10)

    def _list(self) -> str:
        listing = self.kube.request("GET", self.path)
        for pod in listing["items"]:
            self._saw(pod)
        return str(listing["metadata"]["resourceVersion"])

    def _saw(self, pod: dict[str, Any]) -> None:
        if (pod.get("spec") or {}).get("nodeName"):
            self.bound.add(pod["metadata"]["name"])
        if len(self.bound) >= self.expected and not self.done.is_set():
            self.done_at = time.monotonic()
            self.done.set()

    def _run(self) -> None:
        while not self.done.is_set():
            try:
                self.stream = self.kube.watch(
                    self.path,
                    query={"watch": True, "resourceVersion": self.resource_version},
                    read_timeout_seconds=60,
                )
                for event in self.stream:
                    if event.get("type") == "ERROR":  # expired: start again from a new list
                        self.resource_version = self._list()
                        break
                    pod = event["object"]
                    self.resource_version = pod["metadata"]["resourceVersion"]
                    self._saw(pod)
                    if self.done.is_set():
                        return
            except ApiError:
                if not self.done.is_set():
                    self.done.wait(0.1)


@contextlib.contextmanager
def extender_process(
    cluster: LocalCluster, *, port: int, extra_args: Sequence[str], log_path: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """`headroom extender` on 127.0.0.1:`port` with the shipped Deployment's flags (the leader
    Lease, /metrics on a port of its own; the addresses and kubeconfig filled in) and
    `extra_args`, once ready; its output to `log_path` (default: this process's). GPU reports
    here are written once, so they must not go stale: --staleness-seconds=3600."""
    election = shipped.load(shipped.SCHEDULER_CONFIG)["leaderElection"]
    with contextlib.ExitStack() as stack:
        log = None if log_path is None else stack.enter_context(log_path.open("ab"))
        extender = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "headroom"),
                "extender",
                f"--bind=127.0.0.1:{port}",
                f"--kubeconfig={cluster.kubeconfig}",
                "--staleness-seconds=3600",
                f"--leader-lease={election['resourceNamespace']}/{election['resourceName']}",
                f"--metrics-bind=127.0.0.1:{free_port()}",
                *extra_args,
            ],
            stdout=log,
            stderr=None if log is None else subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_ready(port)
            yield extender
        finally:
            os.killpg(extender.pid, signal.SIGTERM)
            extender.wait(30)


@contextlib.contextmanager
def headroom_scheduler(
    cluster: LocalCluster,
    *,
    extra_args: Sequence[str] = ("--no-access-log", "--log-level=warning"),
    log_path: Path | None = None,
) -> Iterator[tuple[int, Process]]:
    """`headroom extender` and the shipped kube-scheduler profile calling it, as installed;
    yields the extender's port and the scheduler, once the extender leads."""
    port = free_port()
    with extender_process(cluster, port=port, extra_args=extra_args, log_path=log_path):
        scheduler = cluster.start_scheduler(
            shipped.scheduler_config(
                extender_url=f"http://127.0.0.1:{port}", kubeconfig=cluster.kubeconfig
            ),
            name="headroom-scheduler",
        )
        wait_leading(port)  # it follows the scheduler's Lease, polled each second
        yield port, scheduler


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
