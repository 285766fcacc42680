"""Which nodes' headroom a target's replicas can use, once per scaler round.

A replica can only go where its pod template's node selector and affinity allow
(`extender.scaler.eligibility`) and where its kind of GPU is offered: `nvidia.com/gpu` from the
device plugin on nodes that list it as allocatable, GPUs from DRA claims on nodes whose
ResourceSlices publish GPUs. A mixed cluster (a device-plugin pool and a DRA pool) must not count
one pool's free GPUs as room for the other's pods. Templates that land on the same nodes share
one CapacityIndex per round.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from extender.scaler.eligibility import node_matches, placement_key
from extender.view import ClusterView
from headroom.capacity import CapacityIndex
from headroom.demand import DemandError, GpuDemand, device_plugin_gpus

if TYPE_CHECKING:
    from extender.scaler.controller import ScalerController


class RoundCapacity:
    """The GPUs' headroom for one round: one CapacityIndex per set of nodes a pod template may
    use (most templates name none, and share the index of every schedulable node)."""

    def __init__(self, controller: ScalerController) -> None:
        self.controller = controller
        self._nodes: list[str] | None = None
        self._indexes: dict[str, CapacityIndex] = {}

    def for_pods(self, template: Mapping[str, Any], demand: GpuDemand | None) -> CapacityIndex:
        pod_spec = template.get("spec") or {}
        source = gpu_source(template, demand)
        key = f"{source}|{placement_key(pod_spec)}"
        found = self._indexes.get(key)
        if found is not None:
            return found
        view = self.controller.view
        if self._nodes is None:
            self._nodes = view.schedulable_nodes()
        nodes = [
            n
            for n in self._nodes
            if node_matches(pod_spec, node_name=n, labels=view.node_labels(n))
            and offers(view, n, source)
        ]
        found = CapacityIndex(
            (view.snapshot(n) for n in nodes), previous=self.controller._last_index
        )
        if key == f"{ANY}|":
            self.controller._last_index = found  # lends summaries to the next round
        self._indexes[key] = found
        return found


# Where a template's GPUs come from, which decides the nodes that can give them: the device
# plugin (nodes with `nvidia.com/gpu` allocatable), DRA (nodes publishing GPUs in ResourceSlices),
# or neither (Headroom's shared mode: any node with a GPU report).
DEVICE_PLUGIN, DRA, BOTH, ANY = "device-plugin", "dra", "both", "any"


def gpu_source(template: Mapping[str, Any], demand: GpuDemand | None) -> str:
    try:
        plugin = device_plugin_gpus(template) > 0
    except DemandError:
        plugin = False
    dra = demand is not None and demand.dra
    return BOTH if plugin and dra else DEVICE_PLUGIN if plugin else DRA if dra else ANY


def offers(view: ClusterView, node_name: str, source: str) -> bool:
    if source in (DEVICE_PLUGIN, BOTH) and not view.offers_device_plugin_gpus(node_name):
        return False
    return source not in (DRA, BOTH) or view.dra.publishes_gpus(node_name)
