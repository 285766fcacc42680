"""The inputs of bench/scaler.py: a large cluster view (mixed GPU kinds, stale and unreadable
reports, unhealthy GPUs, bound pods as the watch cache delivers them, new empty nodes) and the
AIScalers over six pod templates, with their observations precomputed per round.

Seeded by the sizes asked for, and timing nothing itself: every run and every leg of
bench/scaler.py gets the same inputs, so what varies between legs is the machine alone."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

from bench.extender_cluster import GI, bound_pod
from extender.scaler.decision import History, MetricObservation, Observations, PodState
from extender.scaler.spec import ScalerSpec, parse_spec
from extender.view import ClusterView
from headroom import names
from headroom.demand import GpuDemand
from headroom.report import GpuPod, GpuState, NodeReport, report_to_status

KINDS = (
    ("H100", 80, 8, 25),
    ("A100-80GB", 80, 8, 25),
    ("A100-40GB", 40, 8, 20),
    ("L40S", 48, 4, 15),
    ("L4", 24, 4, 15),
)  # model, GiB, GPUs per node, weight
# (name, GPU count, GiB per GPU, shared, maxReplicas range)
TEMPLATES = (
    ("embed", 1, 8, True, (8, 24)),
    ("chat", 1, 16, True, (8, 32)),
    ("split", 2, 30, True, (4, 16)),
    ("llm-13b", 1, 40, False, (8, 32)),
    ("llm-70b", 4, 70, False, (2, 12)),
    ("llm-405b", 8, 75, False, (10, 40)),
)


# -- the view -------------------------------------------------------------------------------------
def gpu_pod(
    uid: str, node: str, *, gpus: int, memory_gi: int, shared: bool, assigned: str = ""
) -> dict[str, Any]:
    """A bound pod as the watch cache delivers it (exclusive ones by nvidia.com/gpu)."""
    if shared:
        pod = bound_pod(uid, node, assigned)
        pod["metadata"]["annotations"][names.GPU_MEMORY_ANNOTATION] = f"{memory_gi}Gi"
        return pod
    return {
        "metadata": {
            "uid": uid,
            "name": uid,
            "namespace": "ml",
            "annotations": {names.GPU_MEMORY_ANNOTATION: f"{memory_gi}Gi"},
        },
        "spec": {
            "nodeName": node,
            "containers": [{"name": "c", "resources": {"limits": {names.GPU_RESOURCE: str(gpus)}}}],
        },
        "status": {"phase": "Running"},
    }


def node_objects(
    name: str, rng: random.Random, now: float
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A node's GPUNode and the pods bound to it."""
    model, size_gi, count, _ = rng.choices(KINDS, weights=[k[3] for k in KINDS])[0]
    total, fresh_node = size_gi * GI, rng.random() < 0.005
    gpus, pods = [], []
    for i in range(count):
        uuid, roll = f"GPU-{name}-{i}", 1.0 if fresh_node else rng.random()
        on_gpu: tuple[GpuPod, ...] = ()
        other = 0
        if roll < 0.45:  # an exclusive pod (the device plugin chose the GPU)
            on_gpu = (GpuPod(f"{name}-x{i}", int(total * rng.uniform(0.5, 0.95))),)
            pods.append(gpu_pod(on_gpu[0].uid, name, gpus=1, memory_gi=size_gi // 2, shared=False))
        elif roll < 0.70:  # shared pods with the GPU recorded at bind
            declared = [rng.choice((8, 16, 20)) for _ in range(rng.randint(1, 3))]
            declared = declared[: max(1, size_gi // 20)]
            on_gpu = tuple(
                GpuPod(f"{name}-s{i}-{k}", int(d * GI * rng.uniform(0.5, 1.0)))
                for k, d in enumerate(declared)
            )
            pods += [
                gpu_pod(p.uid, name, gpus=1, memory_gi=d, shared=True, assigned=uuid)
                for p, d in zip(on_gpu, declared, strict=True)
            ]
        elif roll < 0.75:  # a pod Headroom does not know: it holds the GPU whole
            on_gpu = (GpuPod(f"{name}-u{i}", 10 * GI),)
        elif rng.random() < 0.3:
            other = rng.randint(1, 4) * GI
        gpus.append(
            GpuState(
                index=i,
                uuid=uuid,
                model=model,
                total_bytes=total,
                used_bytes=min(total, other + sum(p.used_bytes for p in on_gpu)),
                healthy=fresh_node or rng.random() > 0.02,
                pods=on_gpu,
                unattributed_bytes=other,
            )
        )
    if not fresh_node and rng.random() < 0.03:  # bound, not in the report yet
        if rng.random() < 0.5:
            pods.append(gpu_pod(f"{name}-starting", name, gpus=1, memory_gi=20, shared=False))
        else:
            pods.append(
                gpu_pod(
                    f"{name}-starting",
                    name,
                    gpus=1,
                    memory_gi=16,
                    shared=True,
                    assigned=f"GPU-{name}-{rng.randrange(count)}",
                )
            )
    state = rng.random()
    stale, unreadable = state < 0.02, 0.02 <= state < 0.03
    report = NodeReport(
        node_name=name,
        gpus=tuple(gpus),
        reported_at_unix_seconds=now - (7200 if stale else rng.uniform(0, 10)),
        healthy=not unreadable,
        reason="NVML: driver not loaded" if unreadable else "",
    )
    return {"metadata": {"name": name}, "status": report_to_status(report)}, pods


def build_view(node_count: int, now: float) -> ClusterView:
    rng = random.Random(node_count)
    gpunodes, pods = [], []
    for i in range(node_count):
        gpunode, bound = node_objects(f"node-{i}", rng, now)
        gpunodes.append(gpunode)
        pods += bound
    view = ClusterView()
    view.load(
        gpunodes=gpunodes,
        nodes=({"metadata": {"name": g["metadata"]["name"]}} for g in gpunodes),
        pods=pods,
    )
    return view


# -- the AIScalers --------------------------------------------------------------------------------
@dataclass
class Scaler:
    template: int
    spec: ScalerSpec
    demand: GpuDemand
    current: int
    pending: int
    rounds: list[Observations]
    history: History = field(default_factory=History)


def scaler_spec(j: int, template: int, rng: random.Random) -> ScalerSpec:
    low, high = TEMPLATES[template][4]
    spec: dict[str, Any] = {"minReplicas": 1, "maxReplicas": rng.randint(low, high)}
    if j % 2 == 0:  # the seed form
        spec |= {"deploymentName": f"model-{j}", "metricType": "queue_depth", "targetValue": 10}
    else:
        spec |= {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": f"m{j}"},
            "metrics": [
                {
                    "type": "prometheus",
                    "name": "load",
                    "query": f"sum(load{{m='{j}'}})",
                    "target": {"type": "AverageValue", "averageValue": 40},
                },
                {"type": "queue_depth", "name": "queue", "targetValue": 8},
            ],
            "behavior": {
                "scaleUp": {"stabilizationWindowSeconds": 30},
                "scaleDown": {
                    "stabilizationWindowSeconds": 120,
                    "policies": [{"type": "Pods", "value": 2, "periodSeconds": 60}],
                },
            },
            "feasibility": {"mode": "Enforce" if j % 4 == 1 else "Observe", "allowPending": j % 3},
        }
    return parse_spec({"spec": spec})


def observations(
    j: int, current: int, pending: int, round_: int, *, base: float, rng: random.Random
) -> Observations:
    pods = tuple(
        PodState(f"m{j}-{k}", ready=k >= pending, pending=k < pending) for k in range(current)
    )
    level = base * (1 + 0.5 * math.sin(round_ / 3 + j)) + rng.uniform(0, 4)
    per_pod = {p.name: max(0.0, level + rng.gauss(0, 2)) for p in pods if p.ready}
    if per_pod and j % 7 == 0:
        per_pod.pop(next(iter(per_pod)))  # one pod refuses connections: no value, not zero
    metrics = {
        "queue_depth": MetricObservation(per_pod=per_pod),
        "queue": MetricObservation(per_pod=per_pod),
        "load": MetricObservation(total=level * current * 3),
    }
    return Observations(current, pods, metrics)


def build_scalers(count: int, rounds: int) -> list[Scaler]:
    rng = random.Random(count)
    scalers = []
    for j in range(count):
        template = j % len(TEMPLATES)
        _, gpus, memory_gi, shared, _ = TEMPLATES[template]
        spec = scaler_spec(j, template, rng)
        current = rng.randint(1, max(1, spec.max_replicas // 2))
        pending, base = rng.choice((0, 0, 0, 1)), rng.uniform(6, 25)
        scalers.append(
            Scaler(
                template,
                spec,
                GpuDemand(gpus, memory_gi * GI, shared),
                current,
                pending,
                [
                    observations(j, current, pending, r, base=base, rng=rng)
                    for r in range(rounds + 1)
                ],
            )
        )
    return scalers
