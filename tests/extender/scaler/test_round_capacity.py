"""A round's capacity: the nodes a template may use, from the extender's view and node labels."""

from __future__ import annotations

from typing import Any

from extender.scaler.controller import RoundCapacity, ScalerController
from extender.verbs import Settings
from extender.view import ClusterView
from headroom.demand import GpuDemand
from kubeapi.cache import WatchEvent
from tests.extender.builders import GI, NOW, gpunode, node
from tests.kubeapi.fake import FakeKube


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


def copies(capacity: RoundCapacity, spec: dict[str, Any]) -> int:
    return (
        capacity.for_pods(spec)
        .copies(GpuDemand(1, 40 * GI), 10, now_unix_seconds=NOW, staleness_seconds=90)
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
    assert capacity.for_pods(spec) is capacity.for_pods({"nodeSelector": {"pool": "a100"}})
    scaler.view.apply_node(WatchEvent("MODIFIED", labelled("l1", "a100")))
    assert copies(RoundCapacity(scaler), spec) == 7  # a new round sees the relabelled node
