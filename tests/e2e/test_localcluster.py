"""The control-plane harness itself: the scheduler on request schedules onto Node objects, and
every process started is gone after an interrupt, a killed parent, or `down`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from functools import partial
from pathlib import Path

from kubeapi.client import Kube
from tests.e2e import waiting
from tooling.localcluster import BIN_DIR, LocalCluster

eventually = partial(waiting.eventually, timeout_seconds=60.0)
ROOT = Path(__file__).resolve().parents[2]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def ready_node(name: str) -> dict[str, object]:
    capacity = {"cpu": "8", "memory": "32Gi", "pods": "110"}
    return {
        "metadata": {"name": name},
        "status": {
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def test_the_scheduler_on_request_binds_a_pod_to_a_node_object(
    cluster: LocalCluster, kube: Kube, namespace: str
) -> None:
    kube.request("POST", "/api/v1/nodes", body=ready_node("harness-node-1"))
    # A patch, not a PUT: kube-controller-manager annotates new Nodes meanwhile.
    kube.request(
        "PATCH",
        "/api/v1/nodes/harness-node-1/status",
        content_type="application/merge-patch+json",
        body={"status": ready_node("harness-node-1")["status"]},
    )
    scheduler = cluster.start_scheduler(name="harness-scheduler")
    try:
        kube.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/pods",
            body={
                "metadata": {"name": "p"},
                "spec": {"containers": [{"name": "c", "image": "example.invalid/none"}]},
            },
        )

        def bound() -> bool:
            pod = kube.request("GET", f"/api/v1/namespaces/{namespace}/pods/p")
            return bool(pod["spec"].get("nodeName") == "harness-node-1")

        eventually(bound, what="the pod bound to harness-node-1")
    finally:
        scheduler.stop()
        cluster.processes.pop("harness-scheduler", None)
        kube.request("DELETE", "/api/v1/nodes/harness-node-1")


CHILD = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from tooling.localcluster import LocalCluster
    cluster = LocalCluster(Path(sys.argv[1]))
    with cluster:
        print(json.dumps([p.popen.pid for p in cluster.processes.values()]), flush=True)
        time.sleep(600)
""")


def start_child(tmp_path: Path) -> tuple[subprocess.Popen[str], list[int]]:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path / "c")],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert child.stdout is not None
    pids: list[int] = json.loads(child.stdout.readline())
    assert len(pids) == 3
    assert all(alive(pid) for pid in pids)
    return child, pids


def test_an_interrupted_run_stops_every_process(tmp_path: Path) -> None:
    child, pids = start_child(tmp_path)
    child.send_signal(signal.SIGINT)  # what Ctrl-C sends
    child.wait(60)
    eventually(lambda: not any(alive(pid) for pid in pids), what="all processes gone")


def test_a_killed_parent_takes_its_processes_with_it(tmp_path: Path) -> None:
    child, pids = start_child(tmp_path)
    child.kill()  # no cleanup code runs: the kernel's parent-death signal must do it
    child.wait(60)
    eventually(lambda: not any(alive(pid) for pid in pids), what="all processes gone")


def test_up_and_down_by_hand(tmp_path: Path) -> None:
    workdir = tmp_path / "by-hand"
    run = [sys.executable, "-m", "tooling.clusterctl"]  # what make cluster-up runs
    up = subprocess.run(
        [*run, "up", "--dir", str(workdir)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
        timeout=180,
    )
    kubeconfig = up.stdout.strip()
    assert kubeconfig == str(workdir / "admin.kubeconfig")
    pids = list(json.loads((workdir / "state.json").read_text()).values())
    try:
        kubectl = BIN_DIR / "kubectl"
        nodes = subprocess.run(
            [str(kubectl), "get", "namespaces", "-o", "name"],
            env={**os.environ, "KUBECONFIG": kubeconfig},
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        assert "namespace/default" in nodes.stdout.split()
    finally:
        subprocess.run([*run, "down", "--dir", str(workdir)], cwd=ROOT, check=True, timeout=120)
    assert not any(alive(pid) for pid in pids)
    assert not (workdir / "state.json").exists()
