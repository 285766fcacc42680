"""Benchmark of fast retry: what it costs to bring parked pods back, with 200 pods waiting.

kube-scheduler (1.32+) parks a pod the extender turned away, and queues it again on any cluster
event it watches. Two ways to make that event when GPU memory frees:

- Headroom's requeuer: write each parked pod that the freed room can place (an annotation);
- the alternative: write one Node (an annotation), which wakes every parked pod.

One run, same cluster: 200 pods of 20Gi parked on a full 80Gi GPU. (1) 40Gi are freed and the
requeuer acts: API writes it made, scheduling attempts the scheduler made, seconds until both
pods that fit are bound. (2) No room changes and the Node is written once: the scheduling attempts
that one write causes (every one a wasted trip through the extender). Baseline in the same run:
(2) is the other mechanism's cost, per write and per pod placed; the Node is written three times,
one after the other, for the spread of that cost.

The two mechanisms are counted, not timed against each other, and (1) binds pods, which would
change what (2) wakes: so (2) runs first and they do not alternate. The first line printed names
the versions the run used.

Run: `.venv/bin/python -m bench.requeue` (about a minute; builds/uses the cached control plane).
"""

from __future__ import annotations

import functools
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.extender_cluster import headroom_scheduler
from bench.runinfo import Spread, table, versions_line
from headroom import names
from headroom.report import GpuState, NodeReport, report_to_status
from kubeapi.client import ApiError, Kube, load_api_client
from tooling.localcluster import KUBERNETES_VERSION, LocalCluster, ensure_binaries
from tooling.process import secure_get

GI = 2**30
PODS = 200
NODE_WRITES = 3  # the alternative's cost is measured this many times, for its spread
NODE = "bench-gpu"
GPUNODE = f"/apis/{names.GROUP_VERSION}/{names.GPUNODE_PLURAL}"


def until(check: Callable[[], bool], *, what: str, timeout_seconds: float = 180) -> float:
    """Seconds until `check()` holds (polled), or RuntimeError."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_seconds:
        if check():
            return time.monotonic() - started
        time.sleep(0.05)
    raise RuntimeError(f"{what}: not within {timeout_seconds:.0f}s")


def report(kube: Kube, used_gi: int) -> None:
    gpu = GpuState(
        index=0,
        uuid=f"GPU-{NODE}-0",
        model="A100",
        total_bytes=80 * GI,
        used_bytes=used_gi * GI,
        unattributed_bytes=used_gi * GI,
    )
    obj = kube.request("GET", f"{GPUNODE}/{NODE}")
    obj["status"] = report_to_status(
        NodeReport(node_name=NODE, reported_at_unix_seconds=time.time(), gpus=(gpu,))
    )
    kube.request("PUT", f"{GPUNODE}/{NODE}/status", body=obj)


def metric_sum(text: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        series = line.rsplit(" ", 1)[0]
        if series.split("{", 1)[0] == name and all(
            f'{k}="{v}"' in series for k, v in labels.items()
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


def run() -> tuple[list[list[str]], Spread]:
    ensure_binaries()
    root = Path(__file__).resolve().parents[1] / "manifests"
    with LocalCluster(Path(tempfile.mkdtemp(prefix="bench-requeue-"))) as cluster:
        kube = Kube(load_api_client(str(cluster.kubeconfig)))
        cluster.kubectl("apply", "-f", str(root / "crds"), "-f", str(root / "namespace.yaml"))
        cluster.kubectl(
            "wait", "--for=condition=Established", "--timeout=60s", "crd/gpunodes.headroom.dev"
        )
        kube.request("POST", "/api/v1/nodes", body={"metadata": {"name": NODE}})
        capacity = {"cpu": "64", "memory": "512Gi", "pods": "500", names.GPU_RESOURCE: "1"}
        kube.request(
            "PATCH",
            f"/api/v1/nodes/{NODE}/status",
            content_type="application/merge-patch+json",
            body={
                "status": {
                    "capacity": capacity,
                    "allocatable": capacity,
                    "conditions": [{"type": "Ready", "status": "True"}],
                }
            },
        )
        kube.request(
            "POST",
            GPUNODE,
            body={
                "apiVersion": names.GROUP_VERSION,
                "kind": names.GPUNODE_KIND,
                "metadata": {"name": NODE},
            },
        )
        report(kube, used_gi=80)
        with headroom_scheduler(cluster) as (port, scheduler):
            assert scheduler.port is not None
            return measure(kube, scheduler.port, port)


def measure(kube: Kube, scheduler_port: int, extender_port: int) -> tuple[list[list[str]], Spread]:
    import urllib.request  # noqa: PLC0415

    def scheduler(name: str, **labels: str) -> float:
        return metric_sum(secure_get(scheduler_port, "/metrics").decode(), name, **labels)

    def requeued() -> float:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{extender_port}/metrics", timeout=5
        ) as response:
            return metric_sum(response.read().decode(), "headroom_extender_requeued_pods")

    namespace = "bench"
    _park_pods(kube, namespace)

    def quiet() -> bool:
        return (
            scheduler("scheduler_pending_pods", queue="unschedulable") == PODS
            and scheduler("scheduler_pending_pods", queue="active") == 0
            and scheduler("scheduler_pending_pods", queue="backoff") == 0
        )

    until(quiet, what="all pods parked")
    # (2) the alternative's cost first, with no room anywhere.
    node_attempts = _node_update_cost(
        kube, functools.partial(scheduler, "scheduler_schedule_attempts_total"), quiet
    )
    rows = [
        ["one Node update (alternative)", "1", f"{node_attempts.median:.0f}", "0 (no room)", "-"]
    ]
    # (1) Headroom's requeuer: room for two.
    attempts, writes = scheduler("scheduler_schedule_attempts_total"), requeued()
    seconds = _free_and_time(kube, namespace)
    time.sleep(1)  # an observation window: writes or attempts after the binds count too
    rows.append(
        [
            "Headroom's requeuer (pod writes)",
            f"{requeued() - writes:.0f}",
            f"{scheduler('scheduler_schedule_attempts_total') - attempts:.0f}",
            "2",
            f"{seconds:.2f}",
        ]
    )
    return rows, node_attempts


def _park_pods(kube: Kube, namespace: str) -> None:
    """PODS pods of 20Gi (shared) for the Headroom scheduler, in a new namespace."""
    kube.request("POST", "/api/v1/namespaces", body={"metadata": {"name": namespace}})
    until(
        lambda: _exists(kube, f"/api/v1/namespaces/{namespace}/serviceaccounts/default"),
        what="the default ServiceAccount",
    )
    for i in range(PODS):
        kube.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/pods",
            body={
                "metadata": {
                    "name": f"w-{i:03d}",
                    "annotations": {
                        names.GPU_MEMORY_ANNOTATION: "20Gi",
                        names.GPU_SHARING_ANNOTATION: "true",
                    },
                },
                "spec": {
                    "schedulerName": names.SCHEDULER_NAME,
                    "containers": [{"name": "c", "image": "example.invalid/model"}],
                },
            },
        )


def _node_update_cost(
    kube: Kube, attempts_total: Callable[[], float], quiet: Callable[[], bool]
) -> Spread:
    """Scheduling attempts after one Node write, NODE_WRITES times, one write at a time."""

    def retried(before: float) -> bool:
        """Most parked pods tried again since the counter read `before`, and all parked again."""
        return attempts_total() - before >= PODS * 0.9 and quiet()

    per_write = []
    for write in range(NODE_WRITES):
        attempts = attempts_total()
        kube.request(
            "PATCH",
            f"/api/v1/nodes/{NODE}",
            content_type="application/merge-patch+json",
            body={"metadata": {"annotations": {"bench.headroom.dev/requeue": f"{write}"}}},
        )
        until(
            functools.partial(retried, attempts),
            what="the parked pods retried after the Node write",
            timeout_seconds=120,
        )
        per_write.append(attempts_total() - attempts)
    return Spread.of(per_write)


def _free_and_time(kube: Kube, namespace: str) -> float:
    report(kube, used_gi=40)

    def bound() -> int:
        items = kube.request("GET", f"/api/v1/namespaces/{namespace}/pods")["items"]
        return sum(bool(p["spec"].get("nodeName")) for p in items)

    return until(lambda: bound() == 2, what="two pods bound", timeout_seconds=60)


def _exists(kube: Kube, path: str) -> bool:
    try:
        kube.request("GET", path)
    except ApiError:
        return False
    return True


def main() -> int:
    print(versions_line())
    rows, node_attempts = run()
    print(f"fast retry with {PODS} pods parked on kube-scheduler {KUBERNETES_VERSION}")
    print(
        table(
            ["mechanism", "API writes", "scheduling attempts", "pods placed", "seconds to bind"],
            rows,
        )
    )
    print(
        f"scheduling attempts per Node update (the baseline), {NODE_WRITES} updates: "
        f"{node_attempts.describe(digits=0, over='updates')}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
