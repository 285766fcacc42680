"""The bind verb through a FakeKube: binds decided one at a time against in-flight reservations,
failures and refusals that leave no reservation behind, and a 409 Conflict read as the API server
meant it."""

from __future__ import annotations

import threading
from typing import Any

from extender.binder import Binder
from extender.verbs import Settings
from extender.view import ClusterView
from extender.wire import ExtenderBindingArgs, ExtenderBindingResult
from headroom import names
from kubeapi.cache import ADDED, WatchEvent
from kubeapi.client import Conflict, Unreachable
from tests.extender.builders import NOW, gpunode, node, pod
from tests.kubeapi.fake import Call, FakeKube

POD_PATH = "/api/v1/namespaces/ml/pods/{}"


def view_of_one_gpu(total_gi: float = 80) -> ClusterView:
    view = ClusterView()
    view.apply_node(WatchEvent(ADDED, node("n1")))
    view.apply_gpunode(WatchEvent(ADDED, gpunode("n1", [total_gi])))
    return view


def args(uid: str, node_name: str = "n1") -> ExtenderBindingArgs:
    return ExtenderBindingArgs(PodName=uid, PodNamespace="ml", PodUID=uid, Node=node_name)


def serving(*pods: dict[str, Any], binding: Any = None) -> FakeKube:
    """Answers GETs of the pods, and their Binding POSTs with `binding` ({} when None)."""
    kube = FakeKube()
    for p in pods:
        name = p["metadata"]["name"]
        kube.on("GET", POD_PATH.format(name), p)
        kube.on("POST", POD_PATH.format(name) + "/binding", {} if binding is None else binding)
    return kube


def binder(kube: FakeKube, view: ClusterView) -> Binder:
    return Binder(kube, view, settings=Settings(), clock=lambda: NOW)


def test_a_bind_reserves_the_gpus_and_names_them_on_the_binding() -> None:
    view = view_of_one_gpu()
    kube = serving(pod("p-1"))
    assert binder(kube, view).bind(args("p-1")) == {"Error": ""}
    binding = kube.calls[-1]
    assert (binding.method, binding.path) == ("POST", "/api/v1/namespaces/ml/pods/p-1/binding")
    assert binding.body["target"] == {"apiVersion": "v1", "kind": "Node", "name": "n1"}
    assert binding.body["metadata"]["annotations"] == {names.ASSIGNED_GPUS_ANNOTATION: "GPU-n1-0"}
    reserved = view.inflight("p-1")
    assert reserved is not None and reserved[0] == "n1"


def test_concurrent_binds_are_decided_one_at_a_time() -> None:
    view = view_of_one_gpu()  # 80Gi: two pods of 30Gi, never three
    pods = [pod(f"p-{i}", memory="30Gi") for i in range(8)]
    bind = binder(serving(*pods), view)
    start = threading.Barrier(len(pods))
    results: list[str] = []

    def one(uid: str) -> None:
        start.wait()
        results.append(bind.bind(args(uid)).get("Error", ""))

    threads = [threading.Thread(target=one, args=(p["metadata"]["uid"],)) for p in pods]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count("") == 2 and view.reservations() == 2
    assert all(r.startswith("n1 no longer fits") for r in results if r)


def test_a_bind_in_flight_holds_its_gpus_while_its_write_is_on_the_way() -> None:
    view = view_of_one_gpu()
    first, second = pod("p-1", memory="50Gi"), pod("p-2", memory="50Gi")
    posting, release = threading.Event(), threading.Event()

    def slow_binding(call: Call) -> dict[str, Any]:
        posting.set()
        release.wait(10)
        return {}

    kube = serving(first, second).on("POST", POD_PATH.format("p-1") + "/binding", slow_binding)
    bind = binder(kube, view)
    result: list[ExtenderBindingResult] = []
    thread = threading.Thread(target=lambda: result.append(bind.bind(args("p-1"))))
    thread.start()
    assert posting.wait(10)
    refused = bind.bind(args("p-2"))
    release.set()
    thread.join(10)
    assert "no longer fits" in refused["Error"] and result == [{"Error": ""}]
    assert view.inflight("p-2") is None


def test_a_failed_write_releases_the_gpus_and_a_retry_binds() -> None:
    view = view_of_one_gpu()
    p = pod("p-1")
    kube = serving(p, binding=Unreachable("connection refused"))
    result = binder(kube, view).bind(args("p-1"))
    assert result["Error"].startswith("cannot bind: connection refused")
    assert view.inflight("p-1") is None and view.reservations() == 0
    kube.on("POST", POD_PATH.format("p-1") + "/binding", {})
    assert binder(kube, view).bind(args("p-1")) == {"Error": ""}
    assert view.inflight("p-1") is not None


def test_a_retry_keeps_the_gpus_chosen_the_first_time() -> None:
    view = view_of_one_gpu()
    view.apply_gpunode(WatchEvent(ADDED, gpunode("n1", [80, 80])))
    kube = serving(pod("p-1"))
    bind = binder(kube, view)
    bind.bind(args("p-1"))
    bind.bind(args("p-1"))  # the scheduler's retry after a timeout
    bindings = [c.body for c in kube.calls if c.method == "POST"]
    assert len(bindings) == 2 and bindings[0] == bindings[1]


def test_a_refused_bind_writes_nothing_and_reserves_nothing() -> None:
    view = view_of_one_gpu()
    kube = serving(pod("p-1", memory="100Gi"))
    result = binder(kube, view).bind(args("p-1"))
    assert result["Error"].startswith("n1 no longer fits")
    assert view.inflight("p-1") is None and view.reservations() == 0
    assert kube.requests("POST") == []


def test_a_pod_bound_elsewhere_or_replaced_is_refused() -> None:
    view = view_of_one_gpu()
    elsewhere = pod("p-1", node_name="n2")
    assert binder(serving(elsewhere), view).bind(args("p-1")) == {
        "Error": "pod is already bound to n2"
    }
    replaced = pod("p-1")
    replaced["metadata"]["uid"] = "another"
    assert binder(serving(replaced), view).bind(args("p-1")) == {
        "Error": "the pod was replaced by another of the same name"
    }
    assert view.reservations() == 0


def test_a_conflict_after_our_own_earlier_bind_landed_is_success() -> None:
    view = view_of_one_gpu()
    unbound, bound = pod("p-1"), pod("p-1", node_name="n1")
    reads = [unbound, bound]  # before the bind, then after the earlier attempt landed
    kube = serving(unbound, binding=Conflict("pod p-1 is already assigned to node n1"))
    kube.on("GET", POD_PATH.format("p-1"), lambda call: reads.pop(0))
    assert binder(kube, view).bind(args("p-1")) == {"Error": ""}
    assert view.inflight("p-1") is not None


def test_a_conflict_because_the_pod_went_to_another_node_is_refused() -> None:
    view = view_of_one_gpu()
    unbound, elsewhere = pod("p-1"), pod("p-1", node_name="n2")
    reads = [unbound, elsewhere]
    kube = serving(unbound, binding=Conflict("pod p-1 is already assigned to node n2"))
    kube.on("GET", POD_PATH.format("p-1"), lambda call: reads.pop(0))
    result = binder(kube, view).bind(args("p-1"))
    assert result["Error"] == "cannot bind: HTTP 409: pod p-1 is already assigned to node n2"
    assert view.inflight("p-1") is None
