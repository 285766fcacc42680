"""DRA in the extender: claims and slices through the view's DRA cache, the filter with its DRA
check, and bind checking the device the allocator chose, undoing a refused allocation, and the
filter then keeping that node out while the GPU stays as it was (no loop)."""

from __future__ import annotations

import copy
from typing import Any

from extender.binder import Binder
from extender.dracheck import DraGate
from extender.verbs import Settings, filter_nodes
from extender.view import ClusterView
from extender.wire import ExtenderBindingArgs
from headroom.fit import ledger
from kubeapi.cache import ADDED, DELETED, MODIFIED, WatchEvent
from tests.extender.builders import NOW, gpunode, node
from tests.kubeapi.fake import FakeKube
from tooling.dra import GIB, claim_template, resource_slice

CLAIMS = "/apis/resource.k8s.io/v1/namespaces/ml/resourceclaims/{}"


def claim_pod(uid: str, *, node_name: str = "", memory: str | None = "20Gi") -> dict[str, Any]:
    """A pod whose GPU comes from the claim `<uid>-gpu`, made from the template `one-gpu`."""
    annotations = {} if memory is None else {"headroom.dev/gpu-memory": memory}
    return {
        "metadata": {"name": uid, "namespace": "ml", "uid": uid, "annotations": annotations},
        "spec": {
            "nodeName": node_name or None,
            "resourceClaims": [{"name": "gpu", "resourceClaimTemplateName": "one-gpu"}],
            "containers": [{"name": "c", "resources": {"claims": [{"name": "gpu"}]}}],
        },
        "status": {
            "phase": "Pending",
            "resourceClaimStatuses": [{"name": "gpu", "resourceClaimName": f"{uid}-gpu"}],
        },
    }


def claim(uid: str, *, device: str | None = None, node_name: str = "n1") -> dict[str, Any]:
    """The claim of `claim_pod(uid)`, allocated to `device` of the node's pool when given."""
    obj: dict[str, Any] = {
        "metadata": {"name": f"{uid}-gpu", "namespace": "ml", "uid": f"c-{uid}"},
        "spec": copy.deepcopy(claim_template("one-gpu")["spec"]["spec"]),
        "status": {},
    }
    if device is not None:
        result = {"request": "gpu", "driver": "gpu.nvidia.com", "pool": node_name, "device": device}
        obj["status"] = {
            "allocation": {"devices": {"results": [result]}},
            "reservedFor": [{"resource": "pods", "name": uid, "uid": uid}],
        }
    return obj


def dra_view(used_gi: list[float]) -> ClusterView:
    """Node n1 with one 80Gi GPU per entry of `used_gi` (in use outside Kubernetes), and its
    slice publishing them as gpu-0, gpu-1, ... with the same UUIDs."""
    view = ClusterView()
    view.apply_node(WatchEvent(ADDED, node("n1")))
    report = gpunode("n1", [80] * len(used_gi))
    for gpu, used in zip(report["status"]["gpus"], used_gi, strict=True):
        gpu["usedBytes"] = gpu["unattributedBytes"] = int(used * GIB)
    view.apply_gpunode(WatchEvent(ADDED, report))
    gpus = [(f"GPU-n1-{i}", 80 * GIB) for i in range(len(used_gi))]
    view.dra.apply_slice(WatchEvent(ADDED, resource_slice("n1", gpus)))
    view.dra.apply_template(
        WatchEvent(
            ADDED, {**claim_template("one-gpu"), "metadata": {"name": "one-gpu", "namespace": "ml"}}
        )
    )
    return view


def run_filter(view: ClusterView, pod: dict[str, Any]) -> dict[str, Any]:
    gate = DraGate(view, settings=Settings(), clock=lambda: NOW)
    uid = pod["metadata"]["uid"]
    outcome = filter_nodes(
        pod,
        ["n1"],
        None,
        summaries=view.summaries,
        now_unix_seconds=NOW,
        settings=Settings(),
        dra=view.dra.lookups(),
        dra_check=lambda n, d, c: gate.check(n, d, c, pod_uid=uid),
    )
    return dict(outcome.result)


def bind_args(uid: str) -> ExtenderBindingArgs:
    return ExtenderBindingArgs(PodName=uid, PodNamespace="ml", PodUID=uid, Node="n1")


def test_a_claim_pod_asks_for_a_gpu_and_the_filter_judges_it_by_live_memory() -> None:
    view = dra_view([70])  # 10Gi free
    view.dra.apply_claim(WatchEvent(ADDED, claim("p")))
    result = run_filter(view, claim_pod("p"))
    assert result["NodeNames"] == []
    assert "needs 20Gi on 1 GPU" in result["FailedNodes"]["n1"]


def test_an_allocated_claim_holds_its_gpu_before_its_pod_is_bound_or_reported() -> None:
    view = dra_view([0, 0])
    view.dra.apply_claim(WatchEvent(ADDED, claim("a", device="gpu-1")))
    books = {b.gpu.uuid: b for b in ledger(view.snapshot("n1"))[0]}
    assert books["GPU-n1-1"].held_whole and not books["GPU-n1-0"].held_whole
    # Bound, the pod's own claim counts it, once; deallocated and gone, the GPU is free again.
    view.apply_pod(WatchEvent(ADDED, claim_pod("a", node_name="n1")))
    assert [c.gpu_uuids for c in view.snapshot("n1").claims] == [("GPU-n1-1",)]
    view.apply_pod(WatchEvent(DELETED, claim_pod("a", node_name="n1")))
    view.dra.apply_claim(WatchEvent(DELETED, claim("a", device="gpu-1")))
    assert not any(b.held_whole for b in ledger(view.snapshot("n1"))[0])


def test_a_claim_seen_before_its_slice_is_placed_once_the_slice_arrives() -> None:
    view = ClusterView()
    view.apply_gpunode(WatchEvent(ADDED, gpunode("n1", [80])))
    view.dra.apply_claim(WatchEvent(ADDED, claim("a", device="gpu-0")))
    assert view.snapshot("n1").claims == ()
    view.dra.apply_slice(WatchEvent(ADDED, resource_slice("n1", [("GPU-n1-0", 80 * GIB)])))
    assert [c.gpu_uuids for c in view.snapshot("n1").claims] == [("GPU-n1-0",)]


def test_a_device_taint_makes_its_gpu_unusable() -> None:
    view = dra_view([0])
    tainted = resource_slice("n1", [("GPU-n1-0", 80 * GIB)])
    tainted["spec"]["devices"][0]["taints"] = [{"key": "lost", "effect": "NoSchedule"}]
    view.dra.apply_slice(WatchEvent(MODIFIED, tainted, resource_slice("n1", [])))
    view.dra.apply_claim(WatchEvent(ADDED, claim("p")))
    result = run_filter(view, claim_pod("p"))
    assert result["NodeNames"] == [], result


def serving(pod: dict[str, Any], claim_obj: dict[str, Any]) -> FakeKube:
    name = pod["metadata"]["name"]
    kube = FakeKube()
    kube.on("GET", f"/api/v1/namespaces/ml/pods/{name}", pod)
    kube.on("POST", f"/api/v1/namespaces/ml/pods/{name}/binding", {})
    kube.on("GET", CLAIMS.format(claim_obj["metadata"]["name"]), claim_obj)
    kube.on("PUT", CLAIMS.format(claim_obj["metadata"]["name"]) + "/status", {})
    return kube


def test_bind_accepts_the_allocated_gpu_that_holds_the_pod_and_reserves_it() -> None:
    view = dra_view([0, 0])
    kube = serving(claim_pod("p"), claim("p", device="gpu-1"))
    binder = Binder(kube, view, settings=Settings(), clock=lambda: NOW)
    assert binder.bind(bind_args("p")) == {"Error": ""}
    held = view.inflight("p")
    assert held is not None and held[1].gpu_uuids == ("GPU-n1-1",)
    binding = next(c for c in kube.calls if c.path.endswith("/binding"))
    assert binding.body["metadata"]["annotations"] == {}  # the claim names the GPU


def test_a_refused_allocation_is_undone_and_the_node_kept_out_until_the_gpu_changes() -> None:
    view = dra_view([70, 0])  # the allocator's first choice, gpu-0, has 10Gi free
    view.dra.apply_claim(WatchEvent(ADDED, claim("p")))
    allocated = claim("p", device="gpu-0")
    kube = serving(claim_pod("p"), allocated)
    binder = Binder(kube, view, settings=Settings(), clock=lambda: NOW)
    error = binder.bind(bind_args("p"))["Error"]
    assert "GPU 0 (GPU-n1-0) has 10Gi free" in error
    undo = next(c for c in kube.calls if c.method == "PUT")
    assert undo.body["status"]["allocation"] is None and undo.body["status"]["reservedFor"] is None
    assert view.inflight("p") is None
    # The next round: gpu-1 could hold the pod, but the allocator would choose gpu-0 again.
    result = run_filter(view, claim_pod("p"))
    assert result["NodeNames"] == []
    assert "the DRA allocator chooses GPU-n1-0 here first" in result["FailedNodes"]["n1"]
    # A pod gpu-0 can hold is not kept out.
    assert run_filter(view, claim_pod("p", memory="5Gi"))["NodeNames"] == ["n1"]
    # gpu-0 gets a holder (another claim): the allocator's choice changes, the miss is forgotten.
    view.dra.apply_claim(WatchEvent(ADDED, claim("other", device="gpu-0")))
    assert run_filter(view, claim_pod("p"))["NodeNames"] == ["n1"]


def test_a_claim_shared_with_a_bound_pod_is_not_undone() -> None:
    view = dra_view([70])
    shared = claim("p", device="gpu-0")
    shared["status"]["reservedFor"].append({"resource": "pods", "name": "q", "uid": "q"})
    kube = serving(claim_pod("p"), shared)
    Binder(kube, view, settings=Settings(), clock=lambda: NOW).bind(bind_args("p"))
    assert not [c for c in kube.calls if c.method == "PUT"]
