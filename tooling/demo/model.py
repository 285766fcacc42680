"""What a demo scenario describes, once read: node groups and their GPUs, the models and their
AIScalers, the load's phases and what the story expects to see. `tooling.demo.scenario` reads a
scenario file into these."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class OutsideProcess:
    name: str
    gpu: int
    memory_bytes: int


@dataclass(frozen=True)
class NodeGroup:
    name: str
    count: int
    gpus: int
    product: str
    gpu_memory_bytes: int
    outside: tuple[OutsideProcess, ...] = ()
    lost_gpus: tuple[int, ...] = ()
    dra: bool = False  # GPUs published as a ResourceSlice, not through the device plugin
    dra_shared: bool = False  # published with consumable memory (allowMultipleAllocations)

    def node_names(self) -> list[str]:
        return (
            [self.name] if self.count == 1 else [f"{self.name}-{i + 1}" for i in range(self.count)]
        )


@dataclass(frozen=True)
class GpuAsk:
    """What one pod asks: `memory` (the annotation's text; "" for none) on each of `gpus` GPUs."""

    memory: str
    memory_bytes: int
    gpus: int
    sharing: bool


@dataclass(frozen=True)
class Model:
    name: str
    ask: GpuAsk
    replicas: int


@dataclass(frozen=True)
class Scaler:
    name: str
    target_value: float
    min_replicas: int
    max_replicas: int
    spec: Mapping[str, Any] = field(default_factory=dict)

    def replicas_for(self, load: float) -> int:
        """What the seed form's queue_depth asks for this total queue (HPA's formula)."""
        wanted = math.ceil(load / self.target_value - 1e-9) if load > 0 else 0
        return max(self.min_replicas, min(self.max_replicas, wanted))


@dataclass(frozen=True)
class Claim:
    """A workload's GPUs through DRA: a ResourceClaimTemplate for `count` GPUs, with `memory`
    (bytes, 0 for none) of each as consumable capacity on a shared GPU."""

    count: int = 1
    memory: str = ""
    memory_bytes: int = 0


@dataclass(frozen=True)
class Workload:
    name: str
    parallelism: int
    ask: GpuAsk
    product: str | None = None  # only on nodes with this GPU (a nodeSelector on the product)
    claim: Claim | None = None  # its GPUs from a ResourceClaim each pod gets (no nvidia.com/gpu)


@dataclass(frozen=True)
class Action:
    kind: str  # one of ACTIONS
    target: str


@dataclass(frozen=True)
class Phase:
    name: str
    load: float | None  # None: keep the previous phase's load
    actions: tuple[Action, ...]
    until: str
    seconds: float
    timeout_seconds: float


@dataclass(frozen=True)
class Expectations:
    cap_reached: bool = True
    cap_lifted: bool = True


@dataclass(frozen=True)
class Scenario:
    name: str
    namespace: str
    nodes: tuple[NodeGroup, ...]
    model: Model
    scaler: Scaler
    workloads: tuple[Workload, ...]
    timeline: tuple[Phase, ...]
    expect: Expectations
    description: str = ""

    def node_names(self) -> list[str]:
        return [n for group in self.nodes for n in group.node_names()]

    @property
    def uses_dra(self) -> bool:
        return any(g.dra for g in self.nodes) or any(w.claim for w in self.workloads)

    def started_later(self) -> set[str]:
        """Workloads a timeline action starts; the others run from the beginning."""
        return {a.target for p in self.timeline for a in p.actions if a.kind == "start"}
