"""Benchmark of the scheduler extender.

(a) filter + prioritize server time (Flask app in-process: JSON in, accounting, JSON out) at 1,000
    and 5,000 nodes of 8 GPUs, p50/p99 over warm requests, for the node list the scheduler sends
    (its adaptive share of feasible nodes) and for every node; baseline in the same run: the
    same requests answered by a pass-through app (parsing and answering only). Memory: the RSS the
    5,000-node view adds.

The real kube-scheduler with and without the extender is bench/scheduler.py's.

Run: `.venv/bin/python -m bench.extender`.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask, jsonify, request

from bench.extender_cluster import GI, GPUS_PER_NODE, bound_pod, gpunode, p99, table
from extender.app import Runtime, create_app
from extender.leader import Leadership
from extender.verbs import Settings
from extender.view import ClusterView
from headroom import names
from headroom.dra import NVIDIA_GPU_DRIVER
from kubeapi.cache import ADDED, WatchEvent
from tooling.dra import claim_template, resource_slice


class _Synced:
    synced = True


def build_view(node_count: int, now: float) -> ClusterView:
    rng = random.Random(node_count)
    view = ClusterView()
    names_ = [f"node-{i}" for i in range(node_count)]
    publish_dra(view, names_, rng)
    view.load(
        gpunodes=(gpunode(n, rng, now) for n in names_),
        nodes=({"metadata": {"name": n}} for n in names_),
        pods=(
            bound_pod(f"{n}-p{g}", n, f"GPU-{n}-{g}")
            for n in names_
            for g in range(GPUS_PER_NODE)
            if rng.random() < 0.3
        ),
    )
    return view


def publish_dra(view: ClusterView, node_names: list[str], rng: random.Random) -> None:
    """Every node's GPUs also published as a ResourceSlice, a tenth of them allocated to claims
    of pods not bound yet, and the claim (unallocated) of the claim pod the requests ask about:
    what the DRA cache holds on such a cluster."""
    for name in node_names:
        gpus = [(f"GPU-{name}-{g}", 80 * GI) for g in range(GPUS_PER_NODE)]
        view.dra.apply_slice(WatchEvent(ADDED, resource_slice(name, gpus)))
        for g in range(GPUS_PER_NODE):
            if rng.random() < 0.1:
                view.dra.apply_claim(WatchEvent(ADDED, dra_claim(f"{name}-c{g}", name, g)))
    template = claim_template("one-gpu")
    template["metadata"]["namespace"] = "ml"
    view.dra.apply_template(WatchEvent(ADDED, template))
    view.dra.apply_claim(WatchEvent(ADDED, dra_claim("new-gpu", "", None)))


def dra_claim(name: str, node: str, gpu: int | None) -> dict[str, Any]:
    status: dict[str, Any] = {}
    if gpu is not None:
        result = {
            "request": "gpu",
            "driver": NVIDIA_GPU_DRIVER,
            "pool": node,
            "device": f"gpu-{gpu}",
        }
        status = {
            "allocation": {"devices": {"results": [result]}},
            "reservedFor": [{"resource": "pods", "name": name, "uid": f"uid-{name}"}],
        }
    return {
        "metadata": {"name": name, "namespace": "ml", "uid": f"claim-{name}"},
        "spec": claim_template("one-gpu")["spec"]["spec"],
        "status": status,
    }


def claim_request_body(node_names: list[str]) -> dict[str, Any]:
    """The same pod with its GPU from a claim (made from a template) instead of the annotation
    alone: `headroom.dev/gpu-memory` still says 30Gi."""
    body = request_body(node_names)
    pod = body["Pod"]
    pod["metadata"]["annotations"].pop(names.GPU_SHARING_ANNOTATION, None)
    pod["spec"]["resourceClaims"] = [{"name": "gpu", "resourceClaimTemplateName": "one-gpu"}]
    pod["status"]["resourceClaimStatuses"] = [{"name": "gpu", "resourceClaimName": "new-gpu"}]
    return body


def request_body(node_names: list[str]) -> dict[str, Any]:
    pod = bound_pod("new", "", "")
    pod["metadata"]["annotations"].pop(names.ASSIGNED_GPUS_ANNOTATION)
    pod["metadata"]["annotations"][names.GPU_MEMORY_ANNOTATION] = "30Gi"
    pod["spec"].pop("nodeName")
    return {"Pod": pod, "NodeNames": node_names}


def passthrough_app() -> Flask:
    app = Flask("passthrough")

    @app.post("/filter")
    def filter_() -> Any:
        body = request.get_json()
        return jsonify(NodeNames=body["NodeNames"], FailedNodes={}, Error="")

    @app.post("/prioritize")
    def prioritize_() -> Any:
        body = request.get_json()
        return jsonify([{"Host": n, "Score": 0} for n in body["NodeNames"]])

    return app


def time_requests(app: Flask, body: dict[str, Any], rounds: int) -> list[float]:
    client = app.test_client()
    client.post("/filter", json=body)  # warm: summaries computed once
    samples_ms = []
    for _ in range(rounds):
        start = time.perf_counter()
        assert client.post("/filter", json=body).status_code == 200
        assert client.post("/prioritize", json=body).status_code == 200
        samples_ms.append((time.perf_counter() - start) * 1000)
    return samples_ms


def _fixed(now: float) -> Callable[[], float]:
    return lambda: now


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def part_a(rounds: int) -> list[list[str]]:
    rows = []
    for node_count in (1000, 5000):
        now = time.time()
        before = rss_mib()
        view = build_view(node_count, now)
        rss_view = rss_mib() - before
        gc.collect()
        gc.freeze()  # what the extender does once its caches have synced
        runtime = Runtime(
            view=view,
            settings=Settings(staleness_seconds=3600),
            leadership=Leadership(None, lease=None, identity="bench"),
            caches=[_Synced()],  # type: ignore[list-item]
            clock=_fixed(now),
        )
        app = create_app(runtime=runtime)
        all_names = [f"node-{i}" for i in range(node_count)]
        # kube-scheduler stops filtering after max(5, 50 - nodes/125) % of the nodes fit
        # (percentageOfNodesToScore left adaptive, as the shipped profile leaves it).
        share = max(5.0, 50 - node_count / 125) / 100
        sent = all_names[: int(node_count * share)]
        for label, body in (
            (f"{share:.0%} (as sent)", request_body(sent)),
            ("all", request_body(all_names)),
            (f"{share:.0%} (as sent), claim pod", claim_request_body(sent)),
        ):
            ours = time_requests(app, body, rounds)
            base = time_requests(passthrough_app(), body, rounds)
            rows.append(
                [
                    f"{node_count}",
                    label,
                    f"{statistics.median(ours):.2f}",
                    f"{p99(ours):.2f}",
                    f"{statistics.median(base):.2f}",
                    f"{statistics.median(ours) / statistics.median(base):.1f}x",
                    f"{rss_view:.0f}",
                ]
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=100, help="requests per case (a)")
    args = parser.parse_args(argv)
    print("(a) filter + prioritize server time, ms (target: p99 <= 10 ms at 5,000 nodes)")
    print(
        table(
            ["nodes", "names sent", "p50", "p99", "pass-through p50", "ratio", "view RSS MiB"],
            part_a(args.rounds),
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
