"""The extender with the real kube-scheduler on the real API server (tests/e2e/stack.py).

GPU reports are written by the test (the node agent has its own e2e tests); the pods never run
(no kubelet), so every placed pod stays a reservation, which is exactly what the accounting must
get right.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from headroom import names
from headroom.report import GpuPod, GpuState, NodeReport, report_to_status
from tests.e2e.stack import GI, Stack, eventually, running_stack
from tooling.localcluster import LocalCluster


@pytest.fixture(scope="module")
def stack(cluster: LocalCluster) -> Iterator[Stack]:
    with running_stack(cluster) as s:
        yield s


def placements(stack: Stack, namespace: str) -> dict[str, list[tuple[str, tuple[str, ...]]]]:
    """node -> [(pod, assigned GPUs)] for the bound pods of a namespace."""
    out: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
    for pod in stack.pods(namespace):
        node = pod["spec"].get("nodeName")
        if node:
            gpus = (pod["metadata"].get("annotations") or {}).get(
                names.ASSIGNED_GPUS_ANNOTATION, ""
            )
            out.setdefault(node, []).append(
                (pod["metadata"]["name"], tuple(g for g in gpus.split(",") if g))
            )
    return out


def events_of(stack: Stack, namespace: str, pod: str) -> str:
    items = stack.kube.request(
        "GET",
        f"/api/v1/namespaces/{namespace}/events",
        query={"fieldSelector": f"involvedObject.name={pod}"},
    )["items"]
    return "\n".join(str(e.get("message", "")) for e in items)


def test_pods_land_only_where_their_memory_fits_and_events_say_why_not(
    stack: Stack, namespace: str
) -> None:
    small, big = f"ext-{stack.label}-l4", f"ext-{stack.label}-a100"
    stack.add_node(small, [24, 24], group="mixed")
    stack.add_node(big, [80], used_gi=30, group="mixed")
    for need in (40, 20, 60):
        stack.pod(namespace, f"needs-{need}", memory=f"{need}Gi", group="mixed")
    eventually(
        lambda: (
            {p for ps in placements(stack, namespace).values() for p, _ in ps}
            >= {"needs-40", "needs-20"}
        ),
        what="two pods placed",
    )
    placed = placements(stack, namespace)
    assert [p for p, _ in placed[big]] == ["needs-40"]  # 50Gi free there, 24Gi GPUs elsewhere
    assert "needs-60" not in {p for ps in placed.values() for p, _ in ps}
    eventually(
        lambda: "needs 60Gi on 1 GPU" in events_of(stack, namespace, "needs-60"),
        what="the extender's reason in the pod's events",
    )
    message = events_of(stack, namespace, "needs-60")
    assert "best free 10Gi on GPU 0" in message or "the largest 24Gi" in message, message


def committed_per_gpu(stack: Stack, namespace: str, need_gi: float) -> dict[str, float]:
    per_gpu: dict[str, float] = {}
    for pods in placements(stack, namespace).values():
        for _, gpus in pods:
            assert len(gpus) == 1
            per_gpu[gpus[0]] = per_gpu.get(gpus[0], 0) + need_gi
    return per_gpu


def burst(stack: Stack, namespace: str, *, prefix: str, restart_after: int | None) -> None:
    """50 pods of 20Gi onto 5 nodes x 2 GPUs x 80Gi (room for 40)."""
    for n in range(5):
        stack.add_node(f"ext-{stack.label}-{prefix}{n}", [80, 80], group=prefix)
    for i in range(50):
        stack.pod(namespace, f"burst-{i}", memory="20Gi", group=prefix)
        if restart_after is not None and i == restart_after:
            eventually(
                lambda: sum(map(len, placements(stack, namespace).values())) >= 10,
                what="some pods placed before the restart",
            )
            stack.kill_extender()
            stack.start_extender()
    eventually(
        lambda: sum(map(len, placements(stack, namespace).values())) == 40,
        timeout_seconds=180,
        what="40 pods placed",
    )
    # The other ten were each turned away by the extender, and stay unplaced.
    unplaced = [
        p["metadata"]["name"] for p in stack.pods(namespace) if not p["spec"].get("nodeName")
    ]
    assert len(unplaced) == 10
    for name in unplaced:

        def rejected(name: str = name) -> bool:
            return "needs 20Gi on 1 GPU" in events_of(stack, namespace, name)

        eventually(rejected, what=f"{name} rejected by the extender")
    assert sum(map(len, placements(stack, namespace).values())) == 40


def assert_no_gpu_overcommitted(stack: Stack, namespace: str) -> None:
    per_gpu = committed_per_gpu(stack, namespace, 20)
    assert sum(per_gpu.values()) == 40 * 20
    assert max(per_gpu.values()) <= 80, per_gpu
    for node, pods in placements(stack, namespace).items():
        assert all(g.startswith(f"GPU-{node}-") for _, gpus in pods for g in gpus)


def remove_nodes(stack: Stack, group: str) -> None:
    stack.cluster.kubectl("delete", "nodes", "-l", f"headroom-e2e-group={group}", "--wait=false")


def test_a_burst_of_50_onto_room_for_40_places_exactly_40(stack: Stack, namespace: str) -> None:
    burst(stack, namespace, prefix="b", restart_after=None)
    assert_no_gpu_overcommitted(stack, namespace)
    remove_nodes(stack, "b")


def test_the_burst_with_the_extender_restarted_halfway_commits_no_gpu_twice(
    stack: Stack, namespace: str
) -> None:
    burst(stack, namespace, prefix="r", restart_after=25)
    assert_no_gpu_overcommitted(stack, namespace)
    remove_nodes(stack, "r")


def test_a_node_whose_report_is_stale_receives_nothing(stack: Stack, namespace: str) -> None:
    fresh, stale = f"ext-{stack.label}-fresh", f"ext-{stack.label}-stale"
    stack.add_node(stale, [80, 80], group="stale", age_seconds=3600)
    stack.add_node(fresh, [80], group="stale")
    for i in range(3):
        stack.pod(namespace, f"s-{i}", memory="30Gi", group="stale")
    eventually(
        lambda: sum(map(len, placements(stack, namespace).values())) == 2,
        what="two pods on the fresh node",
    )

    def stale_reason() -> bool:
        # The age counts from the report's time, 3600 s ago, to the filter call: later when the
        # pod comes back after a refused bind (the scheduler binds asynchronously).
        ages = [
            int(a) for a in re.findall(r"GPU report (\d+)s old", events_of(stack, namespace, "s-2"))
        ]
        return any(3600 <= age < 3700 for age in ages)

    eventually(stale_reason, what="the stale reason in the third pod's events")
    assert set(placements(stack, namespace)) == {fresh}
    remove_nodes(stack, "stale")


def test_a_rejected_pod_is_placed_within_5s_of_memory_being_freed(
    stack: Stack, namespace: str
) -> None:
    # Memory held outside Kubernetes is freed: only a new GPU report says so, which the stock
    # scheduler does not watch. The extender's retry must bring the pod back.
    node = f"ext-{stack.label}-freed"
    stack.add_node(node, [80], used_gi=70, group="freed")
    stack.pod(namespace, "waiting", memory="40Gi", group="freed")
    eventually(
        lambda: "needs 40Gi on 1 GPU" in events_of(stack, namespace, "waiting"),
        what="the pod rejected for memory",
    )
    freed_at = time.monotonic()
    stack.report(node, [80], used_gi=0)
    eventually(
        lambda: bool(placements(stack, namespace)), timeout_seconds=30, what="the pod placed"
    )
    assert time.monotonic() - freed_at <= 5.0
    remove_nodes(stack, "freed")


def post(stack: Stack, verb: str, body: dict[str, Any]) -> dict[str, Any]:
    import urllib.request  # noqa: PLC0415

    request = urllib.request.Request(
        f"http://127.0.0.1:{stack.port}/{verb}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, Any] = json.loads(response.read())
        return answer


def test_bind_commits_once_a_retry_is_harmless_and_a_full_node_is_refused(
    stack: Stack, namespace: str
) -> None:
    node = f"ext-{stack.label}-bind"
    stack.add_node(node, [80], group="bind")
    for name, memory in (("first", "50Gi"), ("second", "50Gi")):
        stack.kube.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/pods",
            body={
                "metadata": {
                    "name": name,
                    "annotations": {
                        names.GPU_MEMORY_ANNOTATION: memory,
                        names.GPU_SHARING_ANNOTATION: "true",
                    },
                },
                # No scheduler serves this name: only the test's own bind calls place these pods.
                "spec": {"schedulerName": "nobody", "containers": [{"name": "c", "image": "x"}]},
            },
        )

    def bind_args(name: str) -> dict[str, Any]:
        pod = stack.kube.request("GET", f"/api/v1/namespaces/{namespace}/pods/{name}")
        return {
            "PodName": name,
            "PodNamespace": namespace,
            "PodUID": pod["metadata"]["uid"],
            "Node": node,
        }

    first = bind_args("first")
    assert post(stack, "bind", first) == {"Error": ""}
    assert post(stack, "bind", first) == {"Error": ""}  # the scheduler retried: harmless
    bound = stack.kube.request("GET", f"/api/v1/namespaces/{namespace}/pods/first")
    assert bound["spec"]["nodeName"] == node
    assert bound["metadata"]["annotations"][names.ASSIGNED_GPUS_ANNOTATION] == f"GPU-{node}-0"
    refused = post(stack, "bind", bind_args("second"))
    assert refused["Error"].startswith(f"{node} no longer fits: needs 50Gi on 1 GPU")
    second = stack.kube.request("GET", f"/api/v1/namespaces/{namespace}/pods/second")
    assert not second["spec"].get("nodeName")
    remove_nodes(stack, "bind")


def gate_of(stack: Stack, namespace: str, name: str) -> tuple[str, str] | None:
    pod = stack.kube.request("GET", f"/api/v1/namespaces/{namespace}/pods/{name}")
    for condition in pod.get("status", {}).get("conditions") or []:
        if condition["type"] == names.GPU_READY_CONDITION:
            return str(condition["status"]), str(condition["reason"])
    return None


def test_the_gpu_ready_gate_follows_the_report(stack: Stack, namespace: str) -> None:
    node = f"ext-{stack.label}-gate"
    stack.add_node(node, [80], group="gate")
    created = stack.kube.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/pods",
        body={
            "metadata": {"name": "gated", "annotations": {names.GPU_MEMORY_ANNOTATION: "10Gi"}},
            "spec": {
                "nodeName": node,
                "readinessGates": [{"conditionType": names.GPU_READY_CONDITION}],
                "containers": [{"name": "c", "image": "example.invalid/model"}],
            },
        },
    )
    uid = created["metadata"]["uid"]
    eventually(
        lambda: gate_of(stack, namespace, "gated") == ("False", "NotResident"),
        what="NotResident before the report shows the pod",
    )

    def write(*, healthy: bool) -> None:
        gpus = (
            GpuState(
                index=0,
                uuid=f"GPU-{node}-0",
                model="test",
                total_bytes=80 * GI,
                used_bytes=10 * GI,
                healthy=healthy,
                reason="" if healthy else "GPU is lost",
                pods=(GpuPod(uid, 10 * GI),),
            ),
        )
        report = NodeReport(node_name=node, reported_at_unix_seconds=time.time(), gpus=gpus)
        path = f"/apis/{names.GROUP_VERSION}/{names.GPUNODE_PLURAL}/{node}"
        obj = stack.kube.request("GET", path)
        obj["status"] = report_to_status(report)
        stack.kube.request("PUT", f"{path}/status", body=obj)

    write(healthy=True)
    eventually(
        lambda: gate_of(stack, namespace, "gated") == ("True", "GPUReady"),
        what="GPUReady once the report shows the pod",
    )
    write(healthy=False)
    eventually(
        lambda: gate_of(stack, namespace, "gated") == ("False", "GPUUnhealthy"),
        what="GPUUnhealthy once its GPU is lost",
    )
    remove_nodes(stack, "gate")
