"""A round's capacity: the nodes a template may use, from the extender's view, node labels and
where its kind of GPU is offered (device plugin or DRA)."""

from __future__ import annotations

from typing import Any

from extender.scaler.controller import ScalerController
from extender.scaler.nodes import RoundCapacity
from extender.verbs import Settings
from extender.view import ClusterView
from headroom.demand import GpuDemand
from headroom.names import GPU_RESOURCE
from kubeapi.cache import WatchEvent
from tests.extender.builders import GI, NOW, gpunode, node
from tests.kubeapi.fake import FakeKube
from tooling.dra import GIB, resource_slice


def labelled(name: str, pool: str) -> dict[str, Any]:
    obj = node(name)
    obj["metadata"]["labels"] = {"pool": pool}
    return obj


def controller() -> ScalerController:
    view = ClusterView()
    view.load(
        gpunodes=[gpunode("a1", [80, 80]), gpunode("a2", [80]), gpunode("l1", [80] * 4)],
        nodes=[labelled("a1", "a100"), labelled("a2", "a100"), labelled("l1", "l40s")],
        pods=[],
    )
    return ScalerController(
        kube=FakeKube(),
        view=view,
        scalers=list,
        pods=list,
        is_leader=lambda: True,
        settings=Settings(),
    )


FORTY = GpuDemand(1, 40 * GI)


def copies(capacity: RoundCapacity, spec: dict[str, Any], demand: GpuDemand = FORTY) -> int:
    return (
        capacity.for_pods({"spec": spec}, demand)
        .copies(demand, 10, now_unix_seconds=NOW, staleness_seconds=90)
        .count
    )


def test_a_template_counts_only_the_nodes_it_may_use() -> None:
    capacity = RoundCapacity(controller())
    assert copies(capacity, {}) == 7
    assert copies(capacity, {"nodeSelector": {"pool": "a100"}}) == 3
    assert copies(capacity, {"nodeSelector": {"pool": "h100"}}) == 0


def test_templates_placing_alike_share_one_index_and_labels_follow_the_node() -> None:
    scaler = controller()
    capacity = RoundCapacity(scaler)
    spec = {"nodeSelector": {"pool": "a100"}}
    demand = GpuDemand(1, 40 * GI)
    assert capacity.for_pods({"spec": spec}, demand) is capacity.for_pods(
        {"spec": {"nodeSelector": {"pool": "a100"}}}, demand
    )
    scaler.view.apply_node(WatchEvent("MODIFIED", labelled("l1", "a100")))
    assert copies(RoundCapacity(scaler), spec) == 7  # a new round sees the relabelled node


def test_device_plugin_pods_count_device_plugin_nodes_and_claim_pods_dra_nodes() -> None:
    """A mixed cluster: a1 and a2 list nvidia.com/gpu, l1 lists none but publishes its GPUs in a
    ResourceSlice. Neither pool's free GPUs are room for the other's pods."""
    scaler = controller()
    view = scaler.view
    for name, gpus in (("a1", "2"), ("a2", "1"), ("l1", "0")):
        obj = labelled(name, "any")
        obj["status"] = {"allocatable": {"cpu": "64", GPU_RESOURCE: gpus}}
        view.apply_node(WatchEvent("MODIFIED", obj))
    view.dra.apply_slice(
        WatchEvent("ADDED", resource_slice("l1", [(f"GPU-l1-{i}", 80 * GIB) for i in range(4)]))
    )
    limits = {"containers": [{"name": "c", "resources": {"limits": {GPU_RESOURCE: "1"}}}]}
    claim = GpuDemand(1, 40 * GI, dra=True)
    assert copies(RoundCapacity(scaler), limits) == 3  # a1, a2
    assert copies(RoundCapacity(scaler), {}, claim) == 4  # l1
    assert copies(RoundCapacity(scaler), {}) == 7  # shared mode: any node with a report
