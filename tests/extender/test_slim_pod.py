"""The pod cache's slim pods carry what the AIScaler reads of a pod: it sees the same pods, in the
same state, as in the full objects a LIST would return."""

from __future__ import annotations

from typing import Any

from extender.scaler.state import pod_state
from extender.scaler.target import Targets
from extender.slimpod import slim_pod
from tests.kubeapi.fake import FakeKube


def full_pod(name: str, *, ready: bool, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "ml",
            "uid": f"uid-{name}",
            "labels": labels,
            "managedFields": [{"manager": "kubelet"}],
        },
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "vllm"}]},
        "status": {
            "phase": "Running",
            "podIP": "10.0.0.7",
            "hostIP": "192.168.0.2",
            "conditions": [
                {"type": "Ready", "status": "True" if ready else "False"},
                {"type": "ContainersReady", "status": "True"},
                {"type": "PodScheduled", "status": "True"},
            ],
        },
    }


def test_a_slim_pod_keeps_labels_ip_and_readiness_and_nothing_else_of_them() -> None:
    slim = slim_pod(full_pod("llm-0", ready=True, labels={"app": "llm"}))
    assert slim["metadata"]["labels"] == {"app": "llm"}
    assert slim["status"]["podIP"] == "10.0.0.7" and "hostIP" not in slim["status"]
    assert [c["type"] for c in slim["status"]["conditions"]] == ["Ready", "PodScheduled"]
    assert "managedFields" not in slim["metadata"]


def test_the_scaler_sees_the_same_pods_and_states_in_the_cache_as_in_a_list() -> None:
    full = [
        full_pod("llm-1", ready=False, labels={"app": "llm"}),
        full_pod("llm-0", ready=True, labels={"app": "llm"}),
        full_pod("web-0", ready=True, labels={"app": "web"}),
    ]
    from_list = Targets(FakeKube(), pods=lambda: full).pods("ml", "app=llm")
    from_cache = Targets(FakeKube(), pods=lambda: [slim_pod(p) for p in full]).pods("ml", "app=llm")
    assert [pod_state(p) for p in from_cache] == [pod_state(p) for p in from_list]
    assert [pod_state(p).ready for p in from_cache] == [True, False]
