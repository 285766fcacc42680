"""The requeuer's choices: which pods are parked, how many the headroom can place, who may be
written again; and one pass over a view, counting its API writes."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from extender.requeue import Parked, Requeuer, RetryBook, parked_pods, pods_to_retry
from extender.view import ClusterView, PodRef
from headroom import names
from headroom.demand import GpuDemand
from kubeapi.cache import ADDED, MODIFIED, WatchEvent
from kubeapi.client import NotFound, Unreachable
from tests.extender.builders import NOW, gpunode, node, pod
from tests.headroom.builders import GI, gpu
from tests.headroom.builders import node as snapshot
from tests.kubeapi.fake import Call, FakeKube

UNSCHEDULABLE = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}


def parked(
    uid: str,
    *,
    memory: str = "20Gi",
    priority: int = 0,
    created: str = "",
    conditions: list[dict[str, str]] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    p = pod(uid, memory=memory, shared=True)
    n = int(uid.split("-")[1])  # p-NNN: created NNN seconds into the day
    p["metadata"]["creationTimestamp"] = created or f"2026-01-01T00:{n // 60:02d}:{n % 60:02d}Z"
    p["spec"].update(priority=priority, **spec)
    p["status"]["conditions"] = [UNSCHEDULABLE] if conditions is None else conditions
    return p


def test_parked_are_only_unbound_gpu_pods_of_this_scheduler_it_called_unschedulable() -> None:
    others = [
        {**parked("p-01"), "spec": {**parked("p-01")["spec"], "nodeName": "n1"}},
        {**parked("p-02"), "spec": {**parked("p-02")["spec"], "schedulerName": "default"}},
        parked("p-03", conditions=[]),  # never tried yet: the scheduler has it in hand
        parked("p-04", conditions=[{**UNSCHEDULABLE, "reason": "SchedulerError"}]),  # in backoff
        {
            **parked("p-05"),
            "metadata": {**parked("p-05")["metadata"], "deletionTimestamp": "2026-01-01T00:00:00Z"},
        },
        parked("p-06", memory="lots"),  # the filter refuses it naming the annotation
    ]
    no_gpu = parked("p-07")
    no_gpu["metadata"]["annotations"] = {}
    assert parked_pods([*others, no_gpu, parked("p-08")], scheduler_name=names.SCHEDULER_NAME) == [
        Parked(
            PodRef("p-08", "ml", "p-08"),
            GpuDemand(1, 20 * GI, shared=True),
            parked("p-08")["spec"],
            created="2026-01-01T00:00:08Z",
        )
    ]


def test_parked_pods_come_in_the_queue_order_priority_then_age() -> None:
    found = parked_pods(
        [parked("p-01"), parked("p-02", priority=10), parked("p-03")],
        scheduler_name=names.SCHEDULER_NAME,
    )
    assert [p.pod.uid for p in found] == ["p-02", "p-01", "p-03"]


def entries(*pods: dict[str, Any]) -> list[Parked]:
    return parked_pods(pods, scheduler_name=names.SCHEDULER_NAME)


def test_only_as_many_pods_as_the_headroom_places_are_chosen() -> None:
    waiting = entries(*(parked(f"p-{i:02d}") for i in range(50)))
    nodes = [
        snapshot("a", gpu(0, total_gi=80, used_gi=30)),  # 50Gi free: two of 20Gi
        snapshot("b", gpu(0, total_gi=24)),
    ]  # one
    chosen = pods_to_retry(waiting, nodes, labels={}, now_unix_seconds=NOW, staleness_seconds=60)
    assert [p.pod.uid for p in chosen] == ["p-00", "p-01", "p-02"]


def test_pods_retried_moments_ago_hold_their_room_and_are_not_chosen_again() -> None:
    waiting = entries(*(parked(f"p-{i:02d}") for i in range(5)))
    nodes = [snapshot("a", gpu(0, total_gi=40))]
    chosen = pods_to_retry(
        waiting,
        nodes,
        labels={},
        now_unix_seconds=NOW,
        staleness_seconds=60,
        in_flight=frozenset({"p-03"}),
    )
    assert [p.pod.uid for p in chosen] == ["p-00"]


def test_a_pod_too_big_for_the_room_does_not_block_a_smaller_one_behind_it() -> None:
    waiting = entries(
        parked("p-01", memory="60Gi", priority=5),
        parked("p-02", memory="60Gi"),
        parked("p-03", memory="10Gi"),
    )
    nodes = [snapshot("a", gpu(0, total_gi=24))]
    chosen = pods_to_retry(waiting, nodes, labels={}, now_unix_seconds=NOW, staleness_seconds=60)
    assert [p.pod.uid for p in chosen] == ["p-03"]


def test_room_on_a_node_the_pod_may_not_use_does_not_count() -> None:
    waiting = entries(parked("p-01", nodeSelector={"pool": "l4"}), parked("p-02"))
    nodes = [snapshot("a", gpu(0, total_gi=24)), snapshot("b", gpu(0, total_gi=24))]
    chosen = pods_to_retry(
        waiting,
        nodes,
        labels={"a": {"pool": "a100"}, "b": {}},
        now_unix_seconds=NOW,
        staleness_seconds=60,
    )
    assert [p.pod.uid for p in chosen] == ["p-02"]


def test_a_stale_report_is_no_room() -> None:
    waiting = entries(parked("p-01"))
    nodes = [snapshot("a", gpu(0, total_gi=80), age_seconds=600)]
    assert (
        pods_to_retry(waiting, nodes, labels={}, now_unix_seconds=NOW, staleness_seconds=60) == []
    )


def test_a_pod_is_written_again_only_after_news_of_headroom_or_a_sweep() -> None:
    book = RetryBook(sweep_seconds=30, in_flight_seconds=10)
    assert book.may_retry("p", NOW)
    book.retried_at["p"] = NOW
    assert not book.may_retry("p", NOW + 5)  # rejected again, parked again: no loop
    assert book.in_flight(NOW + 5) == {"p"} and book.in_flight(NOW + 11) == frozenset()
    book.headroom_at = NOW + 6
    assert book.may_retry("p", NOW + 7)
    book.retried_at["p"] = NOW + 7
    assert not book.may_retry("p", NOW + 20) and book.may_retry("p", NOW + 37)
    book.forget_all_but(set())
    assert book.retried_at == {}


class CountingKube(FakeKube):
    """Answers every pod PATCH (other calls: NotFound); `patched` names the pods written."""

    def __init__(self, pods: list[dict[str, Any]]) -> None:
        super().__init__()
        for p in pods:
            self.on("PATCH", f"/api/v1/namespaces/ml/pods/{p['metadata']['name']}", self.patch)

    def patch(self, call: Call) -> dict[str, Any]:
        return {}

    @property
    def patched(self) -> list[str]:
        return [c.path.rsplit("/", 1)[-1] for c in self.calls if c.method == "PATCH"]


def requeuer(
    pods: list[dict[str, Any]], *, leader: bool = True, clock: Callable[[], float] = lambda: NOW
) -> tuple[Requeuer, CountingKube]:
    view = ClusterView()
    view.apply_node(WatchEvent(ADDED, node("n1")))
    view.apply_gpunode(WatchEvent(ADDED, gpunode("n1", [80, 80], used_gi=0)))
    kube = CountingKube(pods)
    return Requeuer(
        kube,
        view,
        pods=lambda: pods,
        ready=lambda: True,
        is_leader=lambda: leader,
        staleness_seconds=60,
        clock=clock,
        debounce_seconds=0,
    ), kube


def test_one_pass_with_200_waiting_writes_only_the_pods_that_fit() -> None:
    waiting = [parked(f"p-{i:03d}", memory="30Gi") for i in range(200)]
    retry, kube = requeuer(waiting)
    assert retry.retry_fitting() == 4  # two GPUs of 80Gi hold two of 30Gi each
    assert kube.patched == ["p-000", "p-001", "p-002", "p-003"]
    assert retry.retry_fitting() == 0  # the same room, the same pods in flight: no write
    assert retry.nudged == 4


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def test_news_of_headroom_retries_the_pods_it_can_place_with_one_patch_each() -> None:
    waiting = [parked(f"p-{i:03d}", memory="30Gi") for i in range(20)]
    clock = Clock()
    retry, kube = requeuer(waiting, clock=clock)
    assert retry.retry_fitting() == 4
    clock.now += 5
    assert retry.retry_fitting() == 0  # no news: nobody is written again
    clock.now += 10  # the first four are no longer in flight
    retry.view.apply_gpunode(WatchEvent(MODIFIED, gpunode("n1", [80] * 4, used_gi=0)))
    assert retry.retry_fitting() == 8  # four GPUs hold eight, and the news reaches all
    patches = kube.calls[4:]
    assert [c.path.rsplit("/", 1)[-1] for c in patches] == [f"p-{i:03d}" for i in range(8)]
    assert {c.content_type for c in patches} == {"application/merge-patch+json"}
    assert patches[0].body == {
        "metadata": {"uid": "p-000", "annotations": {names.RETRY_ANNOTATION: f"{NOW + 15:.3f}"}}
    }


def test_the_running_requeuer_acts_on_news_of_headroom() -> None:
    waiting = [parked(f"p-{i:03d}", memory="30Gi") for i in range(20)]
    clock = Clock()
    retry, kube = requeuer(waiting, clock=clock)
    written = {4: threading.Event(), 12: threading.Event()}

    def patch(call: Call) -> dict[str, Any]:
        count = len(kube.patched)
        if count in written:
            written[count].set()
        return {}

    for p in waiting:
        kube.on("PATCH", f"/api/v1/namespaces/ml/pods/{p['metadata']['name']}", patch)
    retry.start()
    try:
        assert written[4].wait(10)  # the first pass, once started
        clock.now += 11
        retry.view.apply_gpunode(WatchEvent(MODIFIED, gpunode("n1", [80] * 4, used_gi=0)))
        assert written[12].wait(10)
    finally:
        retry.stop()
    assert len(kube.patched) == 12


def test_a_replica_that_does_not_lead_writes_nothing() -> None:
    retry, kube = requeuer([parked("p-001")], leader=False)
    asked = threading.Event()

    def standing_by() -> bool:  # a pass asks, and is told to stand by
        asked.set()
        return False

    retry.is_leader = standing_by
    retry.start()
    try:
        assert asked.wait(10)
    finally:
        retry.stop()
    assert kube.calls == [] and retry.nudged == 0


def test_a_failed_patch_is_not_fatal_and_that_pod_is_tried_again() -> None:
    waiting = [parked(f"p-{i:03d}", memory="30Gi") for i in range(4)]
    retry, kube = requeuer(waiting)
    kube.on("PATCH", "/api/v1/namespaces/ml/pods/p-000", NotFound('pods "p-000" not found'))
    kube.on("PATCH", "/api/v1/namespaces/ml/pods/p-001", Unreachable("connection refused"))
    assert retry.retry_fitting() == 2
    assert set(retry.book.retried_at) == {"p-002", "p-003"}
    kube.on("PATCH", "/api/v1/namespaces/ml/pods/p-000", {})
    kube.on("PATCH", "/api/v1/namespaces/ml/pods/p-001", {})
    assert retry.retry_fitting() == 2  # the two that failed, not the two in flight
    assert kube.patched[-2:] == ["p-000", "p-001"]


def test_a_pass_notes_the_parked_pods_no_gpu_has_room_for_since_their_first_refusal() -> None:
    refused = {**UNSCHEDULABLE, "lastTransitionTime": "2023-11-14T22:00:00Z"}
    waiting = [
        parked(f"p-{i:03d}", memory="30Gi", conditions=[refused] if i == 5 else None)
        for i in range(6)
    ]
    clock = Clock()
    retry, _ = requeuer(waiting, clock=clock)
    assert retry.waiting_since == {}
    retry.retry_fitting()  # four fit (two 80Gi GPUs), two do not
    first_refusal = 1_699_999_200.0  # 2023-11-14T22:00:00Z
    assert retry.waiting_since == {"p-004": NOW, "p-005": first_refusal}
    clock.now += 5
    retry.retry_fitting()  # still no room; the pods first seen at NOW keep that time
    assert retry.waiting_since == {"p-004": NOW, "p-005": first_refusal}
    clock.now += 10
    retry.view.apply_gpunode(WatchEvent(MODIFIED, gpunode("n1", [80] * 3, used_gi=0)))
    retry.retry_fitting()  # a third GPU: room for both
    assert retry.waiting_since == {}


def test_pods_no_longer_parked_and_a_lost_lead_leave_no_waiting_pods() -> None:
    pods = [parked("p-001", memory="200Gi")]  # no GPU holds it
    retry, _ = requeuer(pods)
    retry.retry_fitting()
    assert list(retry.waiting_since) == ["p-001"]
    retry.on_leading(False)  # the new leader tells
    assert retry.waiting_since == {}
    retry.retry_fitting()
    assert list(retry.waiting_since) == ["p-001"]
    pods.clear()  # bound, or deleted
    retry.retry_fitting()
    assert retry.waiting_since == {}
