"""One real round of the scaler's pure core, for the tests of what the AIScaler status looks
like (schema here, printer columns in tests/e2e/test_printer_columns.py): 3 Ready replicas of the
seed AIScaler's target with 27 requests waiting each (target 10) want more, and only one more
20Gi replica fits on the one node's two L4s."""

from __future__ import annotations

from pathlib import Path

import yaml

from extender.scaler.coldstart import ColdStart
from extender.scaler.decision import History, MetricObservation, Observations, PodState
from extender.scaler.evaluate import evaluate
from extender.scaler.report import round_status, with_transitions
from extender.scaler.spec import parse_spec
from headroom import names
from headroom.demand import GpuDemand
from headroom.fit import NodeSnapshot
from headroom.report import GpuState, NodeReport
from kubeapi.client import JsonDict

SEED = Path(__file__).resolve().parents[2] / "manifests" / "examples" / "seed-aiscaler.yaml"
GI = 2**30


def seed_scaler(namespace: str) -> JsonDict:
    scaler: JsonDict = yaml.safe_load(SEED.read_text())
    scaler["metadata"]["namespace"] = namespace
    return scaler


def limited_round_status(scaler: JsonDict, now_unix_seconds: float) -> JsonDict:
    """The status the controller writes after the round described above."""
    spec = parse_spec(scaler)
    pods = tuple(PodState(f"llm-{i}", ready=True, pending=False) for i in range(3))
    observations = Observations(
        current_replicas=3,
        pods=pods,
        metrics={spec.metrics[0].name: MetricObservation(per_pod={p.name: 27.0 for p in pods})},
    )
    demand = GpuDemand.from_pod(
        {
            "metadata": {"annotations": {names.GPU_MEMORY_ANNOTATION: "20Gi"}},
            "spec": {"containers": [{"name": "llm"}]},
        }
    )
    l4s = tuple(
        GpuState(
            index=i,
            uuid=f"GPU-{i}",
            model="NVIDIA L4",
            total_bytes=24 * GI,
            used_bytes=used_gi * GI,
        )
        for i, used_gi in enumerate((0, 12))
    )
    report = NodeReport(node_name="n1", reported_at_unix_seconds=now_unix_seconds - 2, gpus=l4s)
    outcome = evaluate(
        spec,
        observations,
        History(recommendations=((now_unix_seconds - 600, 3),)),
        demand=demand,
        snapshots=[NodeSnapshot(name="n1", report=report)],
        placed_replicas=3,
        now_unix_seconds=now_unix_seconds,
        staleness_seconds=90,
    )
    status = round_status(
        outcome,
        observations,
        metrics=spec.metrics,
        applied_replicas=outcome.applied_replicas,
        generation=1,
        last_scale_unix_seconds=now_unix_seconds,
        cold_start=ColdStart(p50_seconds=142.0, p90_seconds=171.5, replicas=3),
    )
    return with_transitions(status, {}, now_unix_seconds=now_unix_seconds)
