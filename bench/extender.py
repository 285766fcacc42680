"""Benchmark of the scheduler extender.

(a) filter + prioritize server time (Flask app in-process: JSON in, accounting, JSON out) at 1,000
    and 5,000 nodes of 8 GPUs, p50/p99 over warm requests, for the node list the scheduler sends
    (its adaptive share of feasible nodes) and for every node; baseline in the same run: the
    same requests answered by a pass-through app (parsing and answering only). Memory: the RSS the
    5,000-node view adds.
(b) the real kube-scheduler (the version `tooling/controlplane/versions.env` names) placing pods
    on 500 and on 5,000 Node objects: pods/s of the shipped `headroom` profile with the extender
    (`headroom extender` under gunicorn) divided by a stock profile without it, same cluster, same
    run, one scheduler running at a time. `--pin` runs the control plane (etcd, kube-apiserver,
    kube-controller-manager, kube-scheduler) on CPU 0 and Headroom's processes and this client on
    CPU 1, in both legs alike: how separate machines share nothing.

Run: `.venv/bin/python -m bench.extender [--pin]` (part (b) builds/uses the cached control plane).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from flask import Flask, jsonify, request

from extender.app import Runtime, create_app
from extender.leader import Leadership
from extender.verbs import Settings
from extender.view import ClusterView
from headroom import names
from headroom.report import GpuPod, GpuState, NodeReport, report_to_status
from kubeapi.client import ApiError, Kube, load_api_client
from tooling import shipped
from tooling.localcluster import KUBERNETES_VERSION, LocalCluster, ensure_binaries
from tooling.process import Process, free_port

GI = 2**30
GPUS_PER_NODE = 8


class _Synced:
    synced = True


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


def build_view(node_count: int, now: float) -> ClusterView:
    rng = random.Random(node_count)
    view = ClusterView()
    names_ = [f"node-{i}" for i in range(node_count)]
    view.load(
        gpunodes=(gpunode(n, rng, now) for n in names_),
        nodes=({"metadata": {"name": n}} for n in names_),
        pods=(
            bound_pod(f"{n}-p{g}", n, f"GPU-{n}-{g}")
            for n in names_
            for g in range(GPUS_PER_NODE)
            if rng.random() < 0.3
        ),
    )
    return view


def request_body(node_names: list[str]) -> dict[str, Any]:
    pod = bound_pod("new", "", "")
    pod["metadata"]["annotations"].pop(names.ASSIGNED_GPUS_ANNOTATION)
    pod["metadata"]["annotations"][names.GPU_MEMORY_ANNOTATION] = "30Gi"
    pod["spec"].pop("nodeName")
    return {"Pod": pod, "NodeNames": node_names}


def passthrough_app() -> Flask:
    app = Flask("passthrough")

    @app.post("/filter")
    def filter_() -> Any:
        body = request.get_json()
        return jsonify(NodeNames=body["NodeNames"], FailedNodes={}, Error="")

    @app.post("/prioritize")
    def prioritize_() -> Any:
        body = request.get_json()
        return jsonify([{"Host": n, "Score": 0} for n in body["NodeNames"]])

    return app


def time_requests(app: Flask, body: dict[str, Any], rounds: int) -> list[float]:
    client = app.test_client()
    client.post("/filter", json=body)  # warm: summaries computed once
    samples_ms = []
    for _ in range(rounds):
        start = time.perf_counter()
        assert client.post("/filter", json=body).status_code == 200
        assert client.post("/prioritize", json=body).status_code == 200
        samples_ms.append((time.perf_counter() - start) * 1000)
    return samples_ms


def _fixed(now: float) -> Callable[[], float]:
    return lambda: now


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def p99(samples: list[float]) -> float:
    return sorted(samples)[max(0, int(len(samples) * 0.99) - 1)]


def part_a(rounds: int) -> list[list[str]]:
    rows = []
    for node_count in (1000, 5000):
        now = time.time()
        before = rss_mib()
        view = build_view(node_count, now)
        rss_view = rss_mib() - before
        gc.collect()
        gc.freeze()  # what the extender does once its caches have synced
        runtime = Runtime(
            view=view,
            settings=Settings(staleness_seconds=3600),
            leadership=Leadership(None, lease=None, identity="bench"),
            caches=[_Synced()],  # type: ignore[list-item]
            clock=_fixed(now),
        )
        app = create_app(runtime=runtime)
        all_names = [f"node-{i}" for i in range(node_count)]
        # kube-scheduler stops filtering after max(5, 50 - nodes/125) % of the nodes fit
        # (percentageOfNodesToScore left adaptive, as the shipped profile leaves it).
        share = max(5.0, 50 - node_count / 125) / 100
        for label, node_names in (
            (f"{share:.0%} (as sent)", all_names[: int(node_count * share)]),
            ("all", all_names),
        ):
            body = request_body(node_names)
            ours = time_requests(app, body, rounds)
            base = time_requests(passthrough_app(), body, rounds)
            rows.append(
                [
                    f"{node_count}",
                    label,
                    f"{statistics.median(ours):.2f}",
                    f"{p99(ours):.2f}",
                    f"{statistics.median(base):.2f}",
                    f"{statistics.median(ours) / statistics.median(base):.1f}x",
                    f"{rss_view:.0f}",
                ]
            )
    return rows


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


CONTROL_PLANE_CPU, HEADROOM_CPU = 0, 1


def part_b(node_count: int, pods: int, *, pin: bool) -> list[str]:
    ensure_binaries()
    if pin:  # this client and the extender it starts; the control plane gets the other CPU
        os.sched_setaffinity(0, {HEADROOM_CPU})
    cpus = frozenset({CONTROL_PLANE_CPU}) if pin else None
    root = Path(__file__).resolve().parents[1] / "manifests"
    with LocalCluster(Path(tempfile.mkdtemp(prefix="bench-extender-")), cpus=cpus) as cluster:
        kube = Kube(load_api_client(str(cluster.kubeconfig)))
        cluster.kubectl("apply", "-f", str(root / "crds"), "-f", str(root / "namespace.yaml"))
        cluster.kubectl(
            "wait", "--for=condition=Established", "--timeout=60s", "crd/gpunodes.headroom.dev"
        )
        add_nodes(kube, node_count)
        plain = {
            "apiVersion": "kubescheduler.config.k8s.io/v1",
            "kind": "KubeSchedulerConfiguration",
            "leaderElection": {"leaderElect": False},
            "profiles": [{"schedulerName": "plain"}],
        }
        scheduler = cluster.start_scheduler(plain, name="plain-scheduler")
        without = schedule(kube, "plain", "bench-plain", pods)
        scheduler.stop()
        with headroom_scheduler(cluster) as (port, _):
            with_extender = schedule(kube, names.SCHEDULER_NAME, "bench-headroom", pods)
            verb_times = server_times(port)
    return [
        f"{node_count}",
        "pinned" if pin else "shared",
        f"{pods}",
        f"{with_extender:.1f}",
        f"{without:.1f}",
        f"{with_extender / without:.2f}",
        verb_times,
    ]


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=100, help="requests per case (a)")
    parser.add_argument(
        "--nodes",
        type=int,
        nargs="+",
        default=[500, 5000],
        help="Node objects for (b), one run each (default: 500 5000)",
    )
    parser.add_argument("--pods", type=int, default=200, help="pods per scheduler for (b)")
    parser.add_argument(
        "--pin",
        action="store_true",
        help="(b): control plane on CPU 0, Headroom and this client on CPU 1",
    )
    parser.add_argument("--skip-scheduler", action="store_true", help="only part (a)")
    parser.add_argument("--skip-requests", action="store_true", help="only part (b)")
    args = parser.parse_args(argv)
    if not args.skip_requests:
        print("(a) filter + prioritize server time, ms (target: p99 <= 10 ms at 5,000 nodes)")
        print(
            table(
                ["nodes", "names sent", "p50", "p99", "pass-through p50", "ratio", "view RSS MiB"],
                part_a(args.rounds),
            )
        )
    if not args.skip_scheduler:
        print(f"\n(b) real kube-scheduler {KUBERNETES_VERSION}, pods/s (target: ratio >= 0.8)")
        print(
            table(
                [
                    "nodes",
                    "CPUs",
                    "pods",
                    "with extender",
                    "without",
                    "ratio",
                    "extender server time (mean)",
                ],
                [part_b(n, args.pods, pin=args.pin) for n in args.nodes],
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
