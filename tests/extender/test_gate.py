"""The gpu-ready gate: the judgement for each reason, and the controller patching only changes."""

from __future__ import annotations

from typing import Any

import pytest

from extender.gate import GateController, gate_condition, has_gate
from headroom import names
from headroom.report import GpuPod, GpuState, NodeReport
from tests.kubeapi.fake import FakeKube

GI = 2**30
NOW = 1_700_000_000.0


def report(
    *,
    age_seconds: float = 1,
    healthy_gpu: bool = True,
    resident: bool = True,
    node_healthy: bool = True,
) -> NodeReport:
    pods = (GpuPod("uid-1", 5 * GI),) if resident else ()
    return NodeReport(
        node_name="n",
        reported_at_unix_seconds=NOW - age_seconds,
        healthy=node_healthy,
        reason="" if node_healthy else "driver not loaded",
        gpus=(
            GpuState(
                index=0,
                uuid="GPU-0",
                model="m",
                total_bytes=80 * GI,
                used_bytes=5 * GI,
                pods=pods,
                healthy=healthy_gpu,
                reason="" if healthy_gpu else "GPU is lost",
            ),
            GpuState(index=1, uuid="GPU-1", model="m", total_bytes=80 * GI, used_bytes=0),
        ),
    )


def gated_pod(
    *,
    node: str = "n",
    assigned: str = "",
    condition: tuple[str, str] | None = None,
    gate: bool = True,
) -> dict[str, Any]:
    conditions = (
        []
        if condition is None
        else [{"type": names.GPU_READY_CONDITION, "status": condition[0], "reason": condition[1]}]
    )
    return {
        "metadata": {
            "uid": "uid-1",
            "name": "p",
            "namespace": "ml",
            "annotations": {names.ASSIGNED_GPUS_ANNOTATION: assigned},
        },
        "spec": {
            "nodeName": node,
            "readinessGates": [{"conditionType": names.GPU_READY_CONDITION}] if gate else [],
        },
        "status": {"conditions": conditions},
    }


@pytest.mark.parametrize(
    ("node_report", "assigned", "status", "reason", "words"),
    [
        (report(), "", "True", "GPUReady", "pod resident on GPU 0"),
        (report(), "GPU-0", "True", "GPUReady", "GPU 0"),
        (None, "", "False", "ReportStale", "no GPU report"),
        (report(age_seconds=120), "", "False", "ReportStale", "GPU report 120s old"),
        (report(healthy_gpu=False), "", "False", "GPUUnhealthy", "GPU 0 (GPU-0) unhealthy: GPU"),
        (report(node_healthy=False), "", "False", "GPUUnhealthy", "driver not loaded"),
        (report(resident=False), "", "False", "NotResident", "not seen"),
        (report(resident=False, healthy_gpu=False), "GPU-0", "False", "GPUUnhealthy", "lost"),
    ],
)
def test_gate_condition(
    node_report: NodeReport | None, assigned: str, status: str, reason: str, words: str
) -> None:
    condition = gate_condition(
        gated_pod(assigned=assigned), node_report, now_unix_seconds=NOW, staleness_seconds=90
    )
    assert (condition.status, condition.reason) == (status, reason)
    assert words in condition.message


def test_the_controller_patches_only_gated_bound_pods_whose_condition_changes() -> None:
    kube = FakeKube().on("PATCH", "/api/v1/namespaces/ml/pods/p/status", {})
    pods = [
        gated_pod(),
        gated_pod(gate=False),
        gated_pod(node=""),
        gated_pod(condition=("True", "GPUReady")),
    ]
    pods[3]["metadata"] = {**pods[3]["metadata"], "name": "already"}
    controller = GateController(
        kube,
        pods=lambda: pods,
        report=lambda node: report(),
        is_leader=lambda: True,
        staleness_seconds=90,
        clock=lambda: NOW,
    )
    assert controller.reconcile() == 1
    call = kube.calls[0]
    method, path, body, content_type = call.method, call.path, call.body, call.content_type
    assert (method, path) == ("PATCH", "/api/v1/namespaces/ml/pods/p/status")
    assert content_type == "application/strategic-merge-patch+json"
    assert body["status"]["conditions"][0]["status"] == "True"
    assert body["metadata"]["uid"] == "uid-1"
    assert has_gate(pods[0]) and not has_gate(pods[1])


def test_the_gpus_a_pods_claims_hold_are_its_gpus_before_it_runs_there() -> None:
    """A DRA pod's claim names its GPU: a lost one is reported as such, not as NotResident."""
    lost = report(resident=False, healthy_gpu=False)
    kwargs: dict[str, Any] = {"now_unix_seconds": NOW, "staleness_seconds": 90}
    assert gate_condition(gated_pod(), lost, **kwargs).reason == "NotResident"
    condition = gate_condition(gated_pod(), lost, claimed=["GPU-0"], **kwargs)
    assert (condition.status, condition.reason) == ("False", "GPUUnhealthy")
    healthy_claim = gate_condition(gated_pod(), lost, claimed=["GPU-1"], **kwargs)
    assert healthy_claim.reason == "NotResident"
