"""Simulation of a scale-down: the ReplicaSet's own choice against the AIScaler's ranking.

A cluster of 40 nodes x 4 GPUs x 80Gi, another tenant using some memory on some GPUs, and a
workload of 120 shared replicas of 30Gi placed by `spread` (fragmented, as after a day of scaling
up and down). The workload scales down to 60. Which 60 go:

- stock: the ReplicaSet's order among Ready pods with equal deletion cost: pods on the nodes
  running the most of its replicas first, then the newest;
- AIScaler: `extender.scaler.defrag.deletion_costs`, lowest first.

Then: the largest free block per node (mean), how many nodes are left with no replica at all, and
how many of 16 waiting pods of 60Gi on 4 GPUs (a large model on a whole node) can now be placed
(`headroom.fit.place_replicas`): those that cannot stay Pending for memory. Three seeds, one run.

A simulation, not a timing: seeded, no clock, the same numbers every run, so the two orders need no
alternation. What varies is the cluster from seed to seed: the table gives means over the seeds,
and the line under it the baseline's (stock order's) range over them. The first line printed names
the versions the run used.

Run: `.venv/bin/python -m bench.defrag_sim`.
"""

from __future__ import annotations

import random
import statistics
import sys
from collections.abc import Callable
from typing import Any

from bench.runinfo import Spread, table, versions_line
from extender.scaler.defrag import deletion_costs
from headroom.demand import GpuDemand
from headroom.fit import NodeSnapshot, Policy, place_replicas, summarize
from headroom.report import GpuState, NodeReport

GI = 2**30
NODES, GPUS, GPU_GI = 40, 4, 80
REPLICA = GpuDemand(1, 30 * GI, shared=True)
WAITING = GpuDemand(4, 60 * GI)  # a large model on a whole node (tensor parallel over 4 GPUs)
BEFORE, AFTER, WAITING_PODS = 120, 60, 16
NOW = 1_700_000_000.0


def cluster(rng: random.Random) -> list[NodeSnapshot]:
    snapshots = []
    for n in range(NODES):
        gpus = tuple(
            GpuState(
                index=g,
                uuid=f"GPU-{n}-{g}",
                model="sim",
                total_bytes=GPU_GI * GI,
                used_bytes=(used := rng.choice([0, 0, 0, 10, 20]) * GI),
                unattributed_bytes=used,
            )
            for g in range(GPUS)
        )
        snapshots.append(NodeSnapshot(f"node-{n:02d}", NodeReport(f"node-{n:02d}", NOW, gpus)))
    return snapshots


def scaled_up(snapshots: list[NodeSnapshot]) -> tuple[list[NodeSnapshot], list[dict[str, Any]]]:
    """The workload placed by spread; its pods as the pod cache holds them (oldest first)."""
    placements, after = place_replicas(
        REPLICA,
        BEFORE,
        snapshots,
        now_unix_seconds=NOW,
        staleness_seconds=60,
        policy=Policy.SPREAD,
        uid_prefix="r",
    )
    pods = [
        {"metadata": {"name": f"r-{i}", "uid": f"r-{i}"}, "spec": {"nodeName": p.node_name}}
        for i, p in enumerate(placements)
    ]
    return after, pods


def stock_order(pods: list[dict[str, Any]], _: dict[str, NodeSnapshot]) -> list[str]:
    per_node: dict[str, int] = {}
    for p in pods:
        per_node[p["spec"]["nodeName"]] = per_node.get(p["spec"]["nodeName"], 0) + 1
    ranked = sorted(enumerate(pods), key=lambda ip: (-per_node[ip[1]["spec"]["nodeName"]], -ip[0]))
    return [p["metadata"]["name"] for _, p in ranked]


def aiscaler_order(pods: list[dict[str, Any]], nodes: dict[str, NodeSnapshot]) -> list[str]:
    costs = deletion_costs(pods, nodes)
    return sorted(costs, key=costs.__getitem__)


Order = Callable[[list[dict[str, Any]], dict[str, NodeSnapshot]], list[str]]


def after_scale_down(seed: int, order: Order) -> tuple[float, int, int]:
    """(mean largest free GiB per node, nodes without a replica, waiting pods placed)."""
    snapshots, pods = scaled_up(cluster(random.Random(seed)))
    nodes = {s.name: s for s in snapshots}
    removed = set(order(pods, nodes)[: BEFORE - AFTER])
    kept = [
        NodeSnapshot(s.name, s.report, tuple(c for c in s.claims if c.uid not in removed))
        for s in snapshots
    ]
    summaries = [summarize(s) for s in kept]
    largest = [(s.best_usable[0] if s.best_usable else 0) / GI for s in summaries]
    with_empty = sum(not s.claims for s in kept)
    placed, _ = place_replicas(
        WAITING, WAITING_PODS, kept, now_unix_seconds=NOW, staleness_seconds=60, uid_prefix="w"
    )
    return statistics.fmean(largest), with_empty, len(placed)


def main() -> int:
    print(versions_line())
    rows = []
    results: dict[str, list[tuple[float, int, int]]] = {"stock": [], "AIScaler": []}
    for seed in (1, 2, 3):
        for name, order in (("stock", stock_order), ("AIScaler", aiscaler_order)):
            results[name].append(after_scale_down(seed, order))
    for name, runs in results.items():
        rows.append(
            [
                name,
                f"{statistics.fmean(r[0] for r in runs):.1f}",
                f"{statistics.fmean(r[1] for r in runs):.1f}",
                f"{statistics.fmean(WAITING_PODS - r[2] for r in runs):.1f}",
            ]
        )
    print(
        f"scale-down {BEFORE} -> {AFTER} shared replicas of 30Gi on {NODES} nodes x {GPUS} GPUs; "
        f"then {WAITING_PODS} waiting pods of 60Gi on 4 GPUs (mean of 3 seeds)"
    )
    print(
        table(
            [
                "order",
                "largest free per node GiB",
                "nodes without a replica",
                "waiting left Pending",
            ],
            rows,
        )
    )
    stock = results["stock"]
    print(
        f"stock order over the {len(stock)} seeds: largest free per node "
        f"{Spread.of([r[0] for r in stock]).describe(' GiB', 1, over='seeds')}; nodes without a "
        f"replica {Spread.of([r[1] for r in stock]).describe(digits=0, over='seeds')}; waiting "
        f"left Pending "
        f"{Spread.of([WAITING_PODS - r[2] for r in stock]).describe(digits=0, over='seeds')}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
