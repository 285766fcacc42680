"""The AIScaler controller in the real extender, on the real control plane, with a real Prometheus.

The scheduler pod of tests/e2e/stack.py places the pods (kube-controller-manager's Deployment
controller makes them); a small kubelet stand-in (tests/e2e/scaler_scenes.py) runs what gets bound
(status Running, Ready, an IP) and completes deletions. Prometheus (Debian's package) scrapes two
model-server stand-ins whose queue-depth gauges the test sets: that is the load. The GPU reports
are written by the test, as in test_extender.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from extender.scaler.state import pod_state
from headroom import names
from kubeapi.client import ApiError
from tests.e2e.dra_nodes import add_template, ensure_device_class, publish_gpus, remove_slices
from tests.e2e.scaler_scenes import AISCALERS, Environment, Kubelet, Scene, aiscaler, deployment
from tests.e2e.stack import ROOT, eventually, running_stack
from tests.extender.scaler.standins import QUEUE, ModelServer, running_prometheus
from tooling.localcluster import LocalCluster
from tooling.process import free_port


@pytest.fixture(scope="module")
def env(cluster: LocalCluster) -> Iterator[Environment]:
    with ExitStack() as stack:
        servers = [ModelServer(waiting=0), ModelServer(waiting=0)]
        for server in servers:
            stack.callback(server.close)
        port = free_port()
        running = stack.enter_context(
            running_prometheus([f"127.0.0.1:{s.port}" for s in servers], port=port)
        )
        s = stack.enter_context(
            running_stack(
                cluster,
                extender_args=[
                    f"--prometheus-url={running[0]}",
                    "--scale-down-stabilization-seconds=5",
                ],
            )
        )
        yield Environment(s, servers, port)


@pytest.fixture
def scene(env: Environment, namespace: str) -> Iterator[Scene]:
    kubelet = Kubelet(env.stack.kube, namespace)
    try:
        scene = Scene(env.stack, namespace, env.servers, env.prometheus_port)
        scene.load(5)
        yield scene
    finally:
        kubelet.stop()


def test_load_rises_to_the_gpu_cap_which_lifts_then_holds_without_prometheus_then_falls(
    scene: Scene,
) -> None:
    stack, ns = scene.stack, scene.namespace
    # 2 free GPUs on one node; the other node's only GPU is held by a process outside Kubernetes.
    free_node, busy_node = f"ais-{stack.label}-a", f"ais-{stack.label}-b"
    stack.add_node(free_node, [80, 80], group="scaler")
    stack.add_node(busy_node, [80], used_gi=70, group="scaler")
    stack.kube.request(
        "POST", f"/apis/apps/v1/namespaces/{ns}/deployments", body=deployment(stack.label)
    )
    stack.kube.request("POST", AISCALERS.format(namespace=ns), body=aiscaler(f"sum({QUEUE})"))
    eventually(
        lambda: scene.condition("ScalingActive").get("status") == "True",
        what="the scaler reading Prometheus",
    )

    scene.load(60)  # 6 replicas' worth; the GPUs hold 2
    # Prometheus scrapes the two servers at different moments: the total may pass through a
    # value between the old load and the new one first.
    eventually(
        lambda: scene.condition("ScalingLimited").get("message", "").startswith("wanted 6, 2 fit"),
        what="the GPU cap at the new load",
    )
    condition = scene.condition("ScalingLimited")
    assert condition["reason"] == "InsufficientGPUHeadroom", condition
    limited = condition["message"]
    assert limited.startswith("wanted 6, 2 fit: 4 more need 20Gi"), limited
    assert "largest free 10Gi" in limited, limited
    eventually(lambda: scene.replicas() == 2, what="replicas at the cap")
    status = scene.scaler()["status"]
    assert (status["desiredReplicas"], status["feasibleReplicas"], status["appliedReplicas"]) == (
        6,
        2,
        2,
    )
    # One Event per change of limit (the cap of 2), whatever the load was when it was reached.
    assert any(
        e.startswith("ScalingLimited: wanted ") and ", 2 fit: " in e for e in scene.events()
    ), scene.events()

    # Cold start, measured from the replicas the stand-in kubelet ran (Ready: no gate here).
    eventually(
        lambda: scene.scaler()["status"].get("coldStart", {}).get("replicas", 0) >= 2,
        what="the cold start of two replicas in status",
    )
    cold = scene.scaler()["status"]["coldStart"]
    assert 0 <= cold["p50Seconds"] <= cold["p90Seconds"] < 60, cold

    stack.report(busy_node, [80], used_gi=0)  # the outside process ends: one more GPU
    eventually(lambda: scene.replicas() == 3, what="the cap lifted to 3")
    eventually(
        lambda: scene.scaler()["status"].get("feasibleReplicas") == 3, what="feasible 3 in status"
    )

    process = scene.prometheus_port
    prometheus_url = f"http://127.0.0.1:{process}"
    _kill_prometheus(scene)
    scene.load(5)  # would mean 1 replica, but nobody can see it
    eventually(
        lambda: scene.condition("ScalingActive").get("status") == "False",
        what="the scaler noticing Prometheus is gone",
    )
    assert "metric source unavailable" in scene.condition("ScalingActive")["message"]
    rounds = _rounds_seen(scene, 4)
    assert rounds and scene.replicas() == 3, "replicas held while the metrics are missing"

    with running_prometheus(
        [f"127.0.0.1:{s.port}" for s in scene.servers], port=scene.prometheus_port
    ):
        eventually(
            lambda: scene.replicas() == 1,
            timeout_seconds=90,
            what=f"the scale-down after the window ({prometheus_url} back)",
        )
    # The Event follows the /scale write that was just seen: wait for it too.
    _event_told(scene, "Scaled: scaled Deployment/model from 3 to 1")


@contextmanager
def prometheus_up(scene: Scene) -> Iterator[None]:
    """The module's Prometheus, started again for this test if an earlier one stopped it."""
    with ExitStack() as running:
        if not _answers(scene.prometheus_port):
            running.enter_context(
                running_prometheus(
                    [f"127.0.0.1:{s.port}" for s in scene.servers], port=scene.prometheus_port
                )
            )
        yield


def _event_told(scene: Scene, prefix: str) -> None:
    eventually(
        lambda: any(e.startswith(prefix) for e in scene.events()), what=f"an Event {prefix!r}"
    )


def _kill_prometheus(scene: Scene) -> None:
    import subprocess  # noqa: PLC0415

    subprocess.run(
        ["pkill", "-f", f"web.listen-address=127.0.0.1:{scene.prometheus_port}"], check=False
    )
    eventually(lambda: not _answers(scene.prometheus_port), what="Prometheus gone")


def _answers(port: int) -> bool:
    import urllib.request  # noqa: PLC0415

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=1):
            return True
    except OSError:
        return False


def _rounds_seen(scene: Scene, count: int) -> bool:
    """Wait until the extender has run `count` more AIScaler rounds (its /metrics counts them)."""
    start = _reconciles(scene)
    eventually(
        lambda: _reconciles(scene) >= start + count,
        timeout_seconds=30,
        what=f"{count} scaler rounds",
        interval_seconds=0.5,
    )
    return True


def _reconciles(scene: Scene) -> float:
    import urllib.request  # noqa: PLC0415

    url = f"http://127.0.0.1:{scene.stack.port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("headroom_scaler_reconciles "):
                return float(line.split()[1])
    raise AssertionError("headroom_scaler_reconciles missing from the extender's /metrics")


def test_an_aiscaler_over_claim_pods_caps_at_what_the_gpus_hold(scene: Scene) -> None:
    """The same cap with GPUs from DRA claims: the replicas' demand comes from the pod
    template's claim template, and the stock allocator places them where Headroom lets it."""
    stack, ns = scene.stack, scene.namespace
    ensure_device_class(stack)
    add_template(stack, ns)
    free_node, busy_node = f"aisd-{stack.label}-a", f"aisd-{stack.label}-b"
    with prometheus_up(scene):
        _claim_pods_capped(scene, free_node, busy_node)


def _claim_pods_capped(scene: Scene, free_node: str, busy_node: str) -> None:
    stack, ns = scene.stack, scene.namespace
    try:
        stack.add_node(free_node, [80, 80], group="dra")
        stack.add_node(busy_node, [80], used_gi=70, group="dra")
        publish_gpus(stack, free_node, [80, 80])
        publish_gpus(stack, busy_node, [80])
        stack.kube.request(
            "POST",
            f"/apis/apps/v1/namespaces/{ns}/deployments",
            body=deployment(stack.label, group="dra", dra=True),
        )
        stack.kube.request("POST", AISCALERS.format(namespace=ns), body=aiscaler(f"sum({QUEUE})"))
        scene.load(60)  # 6 replicas' worth; the GPUs hold 2
        eventually(
            lambda: (
                scene.condition("ScalingLimited").get("message", "").startswith("wanted 6, 2 fit")
            ),
            what="the GPU cap for claim pods",
        )
        eventually(lambda: scene.replicas() == 2, what="replicas at the cap")

        def bound() -> list[str]:
            pods = stack.kube.request("GET", f"/api/v1/namespaces/{ns}/pods")["items"]
            return sorted(p["spec"].get("nodeName") or "" for p in pods)

        eventually(lambda: bound() == [free_node, free_node], what="both replicas on the free node")
    finally:
        scene.load(5)
        remove_slices(stack)


def test_a_schedule_window_raises_min_replicas_and_a_bad_cron_is_named(scene: Scene) -> None:
    stack, ns = scene.stack, scene.namespace
    stack.add_node(f"aiss-{stack.label}-a", [80] * 4, group="sched")
    stack.kube.request(
        "POST",
        f"/apis/apps/v1/namespaces/{ns}/deployments",
        body=deployment(stack.label, group="sched"),
    )
    opened = datetime.now(UTC) - timedelta(minutes=5)
    closes = datetime.now(UTC) + timedelta(minutes=60)
    window = {
        "name": "now",
        "start": f"{opened.minute} {opened.hour} * * *",
        "end": f"{closes.minute} {closes.hour} * * *",
        "minReplicas": 3,
    }
    scaler = aiscaler(f"sum({QUEUE})")
    scaler["spec"]["schedule"] = [window]
    stack.kube.request("POST", AISCALERS.format(namespace=ns), body=scaler)
    scene.load(5)  # one replica's worth: the window's minimum decides
    eventually(lambda: scene.replicas() == 3, what="the window's minReplicas")
    assert scene.scaler()["status"]["schedule"]["window"] == "now"
    assert scene.scaler()["status"]["schedule"]["minReplicas"] == 3

    bad = [{**window, "start": "0 25 * * *"}]
    stack.kube.request(
        "PATCH",
        AISCALERS.format(namespace=ns) + "/model",
        body={"spec": {"schedule": bad}},
        content_type="application/merge-patch+json",
    )
    eventually(
        lambda: scene.condition("AbleToScale").get("reason") == "InvalidSpec",
        what="the bad cron refused",
    )
    message = scene.condition("AbleToScale")["message"]
    assert "spec.schedule[0].start: expected a cron expression" in message, message


def test_zero_to_n_on_a_queue_outside_the_pods(scene: Scene) -> None:
    """minReplicas 0 with Prometheus reading a queue that is not the target's pods (the model
    servers here stand in for a router): idle at zero, woken to N by the queue."""
    stack, ns = scene.stack, scene.namespace
    stack.add_node(f"aisz-{stack.label}-a", [80] * 4, group="zero")
    stack.kube.request(
        "POST",
        f"/apis/apps/v1/namespaces/{ns}/deployments",
        body=deployment(stack.label, group="zero"),
    )
    scaler = aiscaler(f"sum({QUEUE})")
    scaler["spec"]["minReplicas"] = 0
    scaler["spec"]["scaleToZero"] = {"activationThreshold": 0.5, "idleSeconds": 3}
    scene.load(0)
    with prometheus_up(scene):
        stack.kube.request("POST", AISCALERS.format(namespace=ns), body=scaler)
        _idle_then_woken(scene)


def _idle_then_woken(scene: Scene) -> None:
    eventually(lambda: scene.replicas() == 0, what="scaled to zero after the idle period")
    eventually(
        lambda: scene.condition("Idle").get("reason") == "ScaledToZero",
        what="idle at zero in status",
    )
    assert "activationThreshold 0.5" in scene.condition("Idle")["message"]
    scene.load(25)  # the queue rises: 25 at 10 per replica
    eventually(lambda: scene.replicas() == 3, what="woken from zero to 3")
    eventually(
        lambda: scene.condition("Idle").get("status") in (None, "False"),
        what="no longer idle",
    )


def test_a_scale_down_frees_a_node_where_the_replicasets_own_order_would_not(
    scene: Scene,
) -> None:
    """Two identical pools of two nodes x two GPUs, three whole-GPU replicas in each (so one node
    runs two and the other one). Scaled to two: the AIScaler's ranking removes the lone replica
    and frees a node; the ReplicaSet's own order (a Deployment scaled by hand) removes one of the
    pair. Then a waiting pod of two GPUs: placed in the first pool, Pending for memory in the
    second."""
    stack, ns = scene.stack, scene.namespace
    for pool in ("dfa", "dfb"):
        for n in ("x", "y"):
            stack.add_node(f"{pool}-{stack.label}-{n}", [80, 80], group=pool)
    apps = f"/apis/apps/v1/namespaces/{ns}/deployments"
    stack.kube.request("POST", apps, body=deployment(stack.label, group="dfa", replicas=3))
    stack.kube.request(
        "POST", apps, body=deployment(stack.label, group="dfb", name="stock", replicas=3)
    )
    eventually(lambda: len(_bound(scene)) == 6, what="3 replicas bound in each pool")
    with prometheus_up(scene):
        scene.load(30)
        stack.kube.request("POST", AISCALERS.format(namespace=ns), body=aiscaler(f"sum({QUEUE})"))
        eventually(
            lambda: scene.condition("ScalingActive").get("status") == "True",
            what="the scaler reading Prometheus",
        )
        scene.load(20)
        stack.kube.request(
            "PATCH",
            f"{apps}/stock/scale",
            body={"spec": {"replicas": 2}},
            content_type="application/merge-patch+json",
        )
        eventually(lambda: len(_bound(scene)) == 4, what="both pools scaled down to 2")
    assert _costs_written(scene), "the AIScaler's replicas carry their deletion cost"
    per_node = _replicas_per_node(scene)
    ours = [per_node.get(f"dfa-{stack.label}-{n}", 0) for n in ("x", "y")]
    theirs = [per_node.get(f"dfb-{stack.label}-{n}", 0) for n in ("x", "y")]
    assert sorted(ours) == [0, 2], per_node  # a node freed
    assert sorted(theirs) == [1, 1], per_node  # the ReplicaSet's own order spread them
    for pool in ("dfa", "dfb"):
        _two_gpu_pod(scene, f"big-{pool}", pool)
    eventually(lambda: _node_of(scene, "big-dfa") is not None, what="the 2-GPU pod placed")
    assert _node_of(scene, "big-dfb") is None


def _costs_written(scene: Scene) -> bool:
    mine = [p for p in _bound(scene) if p["metadata"]["labels"].get("app", "").startswith("model")]
    return bool(mine) and all(
        "controller.kubernetes.io/pod-deletion-cost" in (p["metadata"].get("annotations") or {})
        for p in mine
    )


def _replicas_per_node(scene: Scene) -> dict[str, int]:
    counts: dict[str, int] = {}
    for p in _bound(scene):
        counts[p["spec"]["nodeName"]] = counts.get(p["spec"]["nodeName"], 0) + 1
    return counts


def _two_gpu_pod(scene: Scene, name: str, group: str) -> None:
    scene.stack.kube.request(
        "POST",
        f"/api/v1/namespaces/{scene.namespace}/pods",
        body={
            "metadata": {"name": name, "annotations": {names.GPU_MEMORY_ANNOTATION: "20Gi"}},
            "spec": {
                "schedulerName": names.SCHEDULER_NAME,
                "nodeSelector": {"headroom-e2e": scene.stack.label, "headroom-e2e-group": group},
                "containers": [
                    {
                        "name": "model",
                        "image": "example.invalid/model",
                        "resources": {"limits": {names.GPU_RESOURCE: "2"}},
                    }
                ],
            },
        },
    )


def _node_of(scene: Scene, name: str) -> str | None:
    pod = scene.stack.kube.request("GET", f"/api/v1/namespaces/{scene.namespace}/pods/{name}")
    return pod["spec"].get("nodeName") or None


def _bound(scene: Scene) -> list[dict[str, Any]]:
    """The replicas of the Deployments bound to a node and not being deleted."""
    pods = scene.stack.kube.request("GET", f"/api/v1/namespaces/{scene.namespace}/pods")["items"]
    return [
        p
        for p in pods
        if p["spec"].get("nodeName")
        and not p["metadata"].get("deletionTimestamp")
        and (p["metadata"].get("labels") or {}).get("app")
    ]


def test_an_invalid_spec_or_a_rival_hpa_scales_nothing_and_says_why(scene: Scene) -> None:
    stack, ns = scene.stack, scene.namespace
    stack.kube.request(
        "POST", f"/apis/apps/v1/namespaces/{ns}/deployments", body=deployment(stack.label)
    )
    bad = aiscaler(f"sum({QUEUE})")
    bad["spec"]["minReplicas"] = 9  # above maxReplicas 8: the CRD's own rule refuses it
    with pytest.raises(ApiError) as refused:
        stack.kube.request("POST", AISCALERS.format(namespace=ns), body=bad)
    assert "spec.minReplicas: Invalid value" in str(refused.value)
    # What only the controller can judge: a target type this source does not offer.
    bad["spec"]["minReplicas"] = 1
    bad["spec"]["metrics"][0]["target"] = {"type": "Utilization", "averageUtilization": 50}
    stack.kube.request("POST", AISCALERS.format(namespace=ns), body=bad)
    eventually(
        lambda: scene.condition("AbleToScale").get("reason") == "InvalidSpec",
        what="the invalid spec in status",
    )
    message = scene.condition("AbleToScale")["message"]
    assert "spec.metrics[0].target.type: must be Value or AverageValue for this source" in message
    assert scene.replicas() == 1
    assert any(
        e.startswith("InvalidSpec: invalid spec: spec.metrics[0].target.type")
        for e in scene.events()
    )

    stack.kube.request(
        "POST",
        f"/apis/autoscaling/v1/namespaces/{ns}/horizontalpodautoscalers",
        body={
            "metadata": {"name": "cpu"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "model"},
                "minReplicas": 1,
                "maxReplicas": 3,
            },
        },
    )
    stack.kube.request(
        "PATCH",
        AISCALERS.format(namespace=ns) + "/model",
        content_type="application/merge-patch+json",
        body={"spec": {"metrics": aiscaler(f"sum({QUEUE})")["spec"]["metrics"]}},
    )
    eventually(
        lambda: scene.condition("AbleToScale").get("reason") == "ConflictingHPA",
        what="the rival HPA in status",
    )
    assert (
        "HorizontalPodAutoscaler cpu also scales Deployment/model"
        in scene.condition("AbleToScale")["message"]
    )
    scene.load(60)
    assert _rounds_seen(scene, 3)
    assert scene.replicas() == 1  # the load would ask for 6: the AIScaler stands aside


def test_seed_004_the_seed_aiscaler_scales_both_ways_past_pending_and_refusing_pods(
    env: Environment, namespace: str
) -> None:
    """The seed AIScaler exactly as shipped (15 s polling, queue depth scraped from each Ready
    pod's :8000): maxReplicas 10 is above the 3 replicas the GPUs hold; the node with the third
    GPU never starts its pod (Pending, no IP); one running pod refuses connections."""
    stack = env.stack
    fast, slow = f"seed-{stack.label}-fast", f"seed-{stack.label}-slow"
    stack.add_node(fast, [80, 80], group="seed")  # the slow node joins once replica 1 runs
    servers: dict[str, ModelServer] = {}
    started: list[str] = []
    per_pod_queue = [39.0]  # with the lora queue of 1: 40 per pod, 4 replicas' worth each

    def start(pod: dict[str, Any]) -> str | None:
        if pod["spec"]["nodeName"] == slow:
            return None
        name = pod["metadata"]["name"]
        started.append(name)
        ip = f"127.0.99.{len(started)}"
        if len(started) != 2:  # the second pod to run refuses connections
            servers[name] = ModelServer(waiting=per_pod_queue[0], host=ip, port=8000)
        return ip

    kubelet = Kubelet(stack.kube, namespace, start=start)
    try:
        body = deployment(stack.label, group="seed")
        body["metadata"]["name"] = "llm-server"
        stack.kube.request("POST", f"/apis/apps/v1/namespaces/{namespace}/deployments", body=body)
        # `started` must not be empty: [] == [] held before any pod ran, which let the slow node
        # join early and take the first replica.
        eventually(
            lambda: (
                bool(started)
                and [p["metadata"]["name"] for p in stack.pods(namespace) if pod_state(p).ready]
                == started[:1]
            ),
            what="the first replica Ready",
        )
        stack.add_node(slow, [80], group="seed")
        seed = yaml.safe_load((ROOT / "manifests/examples/seed-aiscaler.yaml").read_text())
        scene = Scene(
            stack,
            namespace,
            [],
            env.prometheus_port,
            target="llm-server",
            scaler_name=seed["metadata"]["name"],
        )
        stack.kube.request("POST", AISCALERS.format(namespace=namespace), body=seed)

        # Rounds are 15 s apart (the seed's default): allow a few.
        try:
            eventually(
                lambda: scene.replicas() == 3, timeout_seconds=90, what="3 replicas, the GPUs' cap"
            )
        except AssertionError as exc:
            pods = [
                (
                    p["metadata"]["name"],
                    p["spec"].get("nodeName"),
                    pod_state(p),
                    p["status"].get("podIP"),
                )
                for p in stack.pods(namespace)
            ]
            raise AssertionError(
                f"{exc}\nstatus: {scene.scaler().get('status')}\nevents: {scene.events()}\n"
                f"pods: {pods}\nstarted: {started}; servers: {sorted(servers)}; kubelet "
                f"errors: {kubelet.errors}"
            ) from exc
        assert not kubelet.errors, kubelet.errors
        # The condition moves on at the next round (a Pending replica then holds the scale-up);
        # the Event stays.
        eventually(
            lambda: any(e.startswith("ScalingLimited: wanted 4, 3 fit") for e in scene.events()),
            what="the cap told in an Event",
        )
        eventually(lambda: len(started) == 2, what="the refusing replica running")
        pending = [p for p in stack.pods(namespace) if p["spec"].get("nodeName") == slow]
        assert len(pending) == 1 and not pending[0]["status"].get("podIP")
        # A round with a Pending pod and a refusing one completes and holds (no cascade).
        assert _rounds_seen(scene, 1)
        assert scene.condition("ScalingActive")["status"] == "True"
        assert scene.replicas() == 3

        per_pod_queue[0] = 1.0  # 2 per pod: the load falls
        for server in servers.values():
            server.waiting = per_pod_queue[0]
        # The refusing pod counts as at target on the way down: (2 + 10) / 2 per pod -> 2.
        eventually(
            lambda: scene.replicas() == 2,
            timeout_seconds=90,
            what="the scale-down past a refusing and a Pending pod",
        )
        # The Event follows the /scale write that was just seen: wait for it too.
        _event_told(scene, "Scaled: scaled Deployment/llm-server from 3 to 2")
    finally:
        kubelet.stop()
        for server in servers.values():
            server.close()
