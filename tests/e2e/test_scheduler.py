"""Where Headroom depends on how kube-scheduler behaves, asserted on the real 1.37 scheduler with
the shipped profile (tests/e2e/stack.py).

- Fast retry: a pod the extender turned away is parked by the scheduler; a GPU report is no event
  it watches, so the extender's requeuer writes the pod (extender/requeue.py). With 200 pods
  waiting and room for two, two pods are written, and both bind within 5 s.
- A nominated node (and the node a batch hints, the same code path) is judged by the filter
  alone, with no prioritize: the filter must refuse it when its headroom has gone.
- Preemption does not evict pods from a node whose GPUs are too small for the preemptor: the
  filter names such nodes in FailedAndUnresolvableNodes.
- Bind runs after PreBind, and a bind the extender refuses is retried cleanly.
- No pod waits for the scheduler's 5-minute flush after a failover: after kube-apiserver was down,
  after a leader change and after the extender was killed, a pod that fits binds within 10 s of
  the extender leading again.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

from headroom import names
from tests.e2e.scheduler_pods import (
    bound_within,
    complete_volume_binding,
    extender_passes,
    gated_pod,
    get_pod,
    is_parked,
    leading_again,
    node_name,
    node_of,
    park_one,
    priority_class,
    release,
    requeued,
    scheduling_of,
    wffc_volume,
)
from tests.e2e.stack import Stack, eventually, release_lease, running_stack, stop_process
from tooling.localcluster import LocalCluster
from tooling.process import free_port


@pytest.fixture(scope="module")
def stack(cluster: LocalCluster) -> Iterator[Stack]:
    with running_stack(cluster) as s:
        yield s


def test_200_waiting_pods_and_room_for_two_cost_two_writes_and_bind_within_5s(
    stack: Stack, namespace: str
) -> None:
    node = node_name(stack, "many")
    stack.add_node(node, [80], used_gi=80, group="many")
    for i in range(200):
        stack.pod(namespace, f"w-{i:03d}", memory="20Gi", group="many")
    # Parked: the scheduler's own queue holds them all as unschedulable (its first status write
    # of each pod sends that pod round once more, so the condition alone is not enough).
    eventually(
        lambda: (
            stack.scheduler_queue().get("unschedulable") == 200
            and not stack.scheduler_queue().get("active")
            and not stack.scheduler_queue().get("backoff")
        ),
        timeout_seconds=180,
        what="all 200 pods parked by the scheduler",
    )
    before = requeued(stack)
    freed_at = time.monotonic()
    stack.report(node, [80], used_gi=40)  # room for two of 20Gi
    eventually(
        lambda: sum(bool(p["spec"].get("nodeName")) for p in stack.pods(namespace)) == 2,
        timeout_seconds=30,
        what="two pods bound",
    )
    assert time.monotonic() - freed_at <= 5.0
    # Never more writes than the room holds: two, not 200. Fewer when other churn in this shared
    # cluster (pods of earlier tests deleted) woke the parked pods first: any event does, for pods
    # an extender turned away. bench/requeue.py counts exactly 2 on a cluster of its own.
    writes = requeued(stack) - before
    assert writes <= 2
    touched = [
        p
        for p in stack.pods(namespace)
        if names.RETRY_ANNOTATION in (p["metadata"].get("annotations") or {})
    ]
    assert len(touched) == writes
    stack.cluster.kubectl("delete", "pods", "--all", "-n", namespace, "--wait=false")


def test_a_nominated_node_is_judged_by_the_filter_alone(stack: Stack, namespace: str) -> None:
    # The scheduler tries a pod's nominated node (or a batch's hinted node: the same code path)
    # first, with the filter and no prioritize: if it passes, the pod goes there whatever the
    # scores say; if not, the whole cluster is tried.
    hinted, roomy = node_name(stack, "hinted"), node_name(stack, "roomy")
    stack.add_node(hinted, [80], used_gi=80, group="hint")
    stack.add_node(roomy, [80, 80], group="hint")
    gated_pod(stack, namespace, "gone", group="hint")
    release(stack, namespace, "gone", nominated=hinted)  # its headroom has gone
    eventually(lambda: node_of(stack, namespace, "gone") is not None, what="'gone' bound")
    assert node_of(stack, namespace, "gone") == roomy  # refused on the node it was hinted to
    # Room for one on the hinted node; spread scores the roomy node higher.
    stack.report(hinted, [80], used_gi=40)
    for name in ("hint", "control"):
        gated_pod(stack, namespace, name, group="hint")
    eventually(
        lambda: extender_passes(stack, namespace, "hint", hinted),
        what="the extender seeing the room on the hinted node",
    )
    release(stack, namespace, "control", nominated=None)
    eventually(lambda: node_of(stack, namespace, "control") is not None, what="'control' bound")
    assert node_of(stack, namespace, "control") == roomy  # what the scores choose
    release(stack, namespace, "hint", nominated=hinted)
    eventually(lambda: node_of(stack, namespace, "hint") is not None, what="'hint' bound")
    assert node_of(stack, namespace, "hint") == hinted  # the filter alone decided


def test_preemption_leaves_nodes_whose_gpus_are_too_small_alone(
    stack: Stack, namespace: str
) -> None:
    priority_class(stack, "headroom-e2e-low", 0)
    priority_class(stack, "headroom-e2e-high", 1000)
    small = node_name(stack, "small")
    stack.add_node(small, [24], group="preempt")
    stack.pod(namespace, "low", memory="20Gi", group="preempt", priority_class="headroom-e2e-low")
    eventually(lambda: node_of(stack, namespace, "low") == small, what="the low pod bound")
    stack.pod(namespace, "high", memory="40Gi", group="preempt", priority_class="headroom-e2e-high")
    eventually(lambda: is_parked(get_pod(stack, namespace, "high")), what="the high pod parked")
    message = next(
        c["message"]
        for c in get_pod(stack, namespace, "high")["status"]["conditions"]
        if c["type"] == "PodScheduled"
    )
    assert "the largest 24Gi" in message or "GPUs of 24Gi" in message, message
    assert "Preemption is not helpful" in message, message
    low = get_pod(stack, namespace, "low")
    assert not low["metadata"].get("deletionTimestamp")  # not evicted for nothing
    assert not get_pod(stack, namespace, "high")["status"].get("nominatedNodeName")


def test_bind_runs_after_prebind_and_a_refused_bind_is_retried_cleanly(
    stack: Stack, namespace: str
) -> None:
    node = node_name(stack, "prebind")
    stack.add_node(node, [80], group="prebind")
    wffc_volume(stack, namespace, node)
    stack.pod(namespace, "model", memory="60Gi", group="prebind", claim="weights")
    pv_path = f"/api/v1/persistentvolumes/pv-{stack.label}"
    try:
        eventually(
            lambda: bool(stack.kube.request("GET", pv_path)["spec"].get("claimRef")),
            what="the scheduler in PreBind (it has bound the volume to the claim)",
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the pod: {scheduling_of(stack, namespace, 'model')}") from exc
    # While the scheduler waits in PreBind, 60Gi are taken outside Kubernetes.
    stack.report(node, [80], used_gi=60)
    binds_refused = stack.metric('headroom_extender_binds_total{result="error"}') or 0.0
    complete_volume_binding(stack, namespace)
    # Bind, called after PreBind, sees the headroom gone and refuses; the scheduler unreserves
    # and retries, and the filter now turns the pod away.
    eventually(
        lambda: (
            (stack.metric('headroom_extender_binds_total{result="error"}') or 0.0) > binds_refused
        ),
        what="the extender refusing the bind",
    )
    eventually(lambda: is_parked(get_pod(stack, namespace, "model")), what="the pod parked")
    assert node_of(stack, namespace, "model") is None
    stack.report(node, [80], used_gi=0)
    eventually(
        lambda: node_of(stack, namespace, "model") == node,
        timeout_seconds=15,
        what="the pod bound once the memory is free again",
    )
    pod = get_pod(stack, namespace, "model")
    assert pod["metadata"]["annotations"][names.ASSIGNED_GPUS_ANNOTATION] == f"GPU-{node}-0"


def test_after_the_extender_is_killed_a_fitting_pod_binds_within_10s_of_it_leading(
    stack: Stack, namespace: str
) -> None:
    node = park_one(stack, namespace, "killed")
    stack.kill_extender()
    stack.report(node, [80], used_gi=0)  # the news arrives while no extender runs
    stack.start_extender(wait_leading=False)
    bound_within(stack, namespace, "killed", 10, since=leading_again(stack))


def test_after_an_api_server_outage_a_fitting_pod_binds_within_10s_of_the_extender_leading(
    stack: Stack, namespace: str
) -> None:
    node = park_one(stack, namespace, "outage")
    stack.cluster.stop_apiserver()
    deadline = time.monotonic() + 20  # the outage lasts 20 s by design: a duration, not a wait
    while time.monotonic() < deadline:
        # The scheduler gives its Lease up and exits; a kubelet would restart it.
        if stack.scheduler is not None and not stack.scheduler.alive():
            stop_process(stack.cluster, stack.scheduler)
            stack.scheduler = None
        time.sleep(0.5)
    stack.cluster.start_apiserver()
    if stack.scheduler is None or not stack.scheduler.alive():
        stop_process(stack.cluster, stack.scheduler)
        stack.start_scheduler()
    stack.report(node, [80], used_gi=0)  # the agent writes as soon as the API is back
    bound_within(stack, namespace, "outage", 10, since=leading_again(stack))


def test_after_a_leader_change_a_fitting_pod_binds_within_10s_of_the_new_extender_leading(
    stack: Stack, namespace: str, cluster: LocalCluster
) -> None:
    # Two scheduler pods, each a kube-scheduler and its extender, named as pods are.
    first = Stack(cluster, stack.kube, stack.label, free_port(), hostname="headroom-a")
    second = Stack(cluster, stack.kube, stack.label, free_port(), hostname="headroom-b")
    stack.stop()  # the module's own pair steps aside for this test
    try:
        first.start_scheduler()
        first.start_extender()
        second.start_scheduler()
        second.start_extender(wait_leading=False)
        node = park_one(first, namespace, "failover")
        # The leading pod dies; the news of headroom reaches the standby before it leads.
        first.kill_extender()
        assert first.scheduler is not None
        os.killpg(first.scheduler.popen.pid, signal.SIGKILL)
        first.scheduler.popen.wait(30)
        first.report(node, [80], used_gi=0)
        bound_within(second, namespace, "failover", 10, since=leading_again(second))
    finally:
        for pair in (second, first):
            pair.kill_extender()
            stop_process(cluster, pair.scheduler)
        release_lease(stack.kube)
        stack.start_scheduler()
        stack.start_extender()
