"""The scaler's target: found through discovery, read from /scale, its pods picked from the pod
cache by the /scale selector, and its replicas written; all through a FakeKube."""

from __future__ import annotations

from typing import Any

import pytest

from extender.scaler.spec import TargetRef
from extender.scaler.target import TargetError, Targets
from headroom import names
from kubeapi.client import NotFound, Unreachable
from tests.kubeapi.fake import FakeKube

DEPLOYMENT = "/apis/apps/v1/namespaces/ml/deployments/llm"
REF = TargetRef("apps/v1", "Deployment", "llm")


def cluster() -> FakeKube:
    template = {
        "metadata": {
            "annotations": {
                names.GPU_MEMORY_ANNOTATION: "20Gi",
                names.GPU_SHARING_ANNOTATION: "true",
            }
        },
        "spec": {"containers": [{"name": "c"}]},
    }
    return (
        FakeKube()
        .on(
            "GET",
            "/apis/apps/v1",
            {
                "resources": [
                    {"name": "deployments", "kind": "Deployment"},
                    {"name": "deployments/scale", "kind": "Scale"},
                ]
            },
        )
        .on(
            "GET",
            f"{DEPLOYMENT}/scale",
            {"spec": {"replicas": 2}, "status": {"selector": "app=llm,tier!=batch"}},
        )
        .on("GET", DEPLOYMENT, {"spec": {"template": template}})
        .on("PATCH", f"{DEPLOYMENT}/scale", {})
    )


def pod(
    name: str, *, namespace: str = "ml", labels: dict[str, str] | None = None, **fields: Any
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": {"app": "llm"} if labels is None else labels,
    }
    if fields.get("deleting"):
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "spec": {}, "status": {"phase": fields.get("phase", "Running")}}


def test_the_target_is_read_through_discovery_and_scale() -> None:
    kube = cluster()
    targets = Targets(kube, pods=list)
    target = targets.read("ml", REF)
    assert (target.path, target.replicas, target.selector) == (DEPLOYMENT, 2, "app=llm,tier!=batch")
    assert target.demand is not None and target.demand.shared
    targets.read("ml", REF)  # the plural is asked once per kind
    assert kube.requests("GET").count("GET /apis/apps/v1") == 1
    targets.scale(target, 3)
    assert kube.calls[-1].body == {"spec": {"replicas": 3}}
    assert kube.calls[-1].content_type == "application/merge-patch+json"


def test_a_missing_or_unreachable_target_is_a_target_error() -> None:
    kube = cluster().on("GET", DEPLOYMENT, NotFound('deployments.apps "llm" not found'))
    with pytest.raises(TargetError, match="Deployment/llm: not found") as info:
        Targets(kube, pods=list).read("ml", REF)
    assert info.value.reason == "FailedGetScale"
    kube.on("GET", DEPLOYMENT, Unreachable("connection refused"))
    with pytest.raises(TargetError, match="connection refused"):
        Targets(kube, pods=list).read("ml", REF)
    kube.on("PATCH", f"{DEPLOYMENT}/scale", Unreachable("connection refused"))
    with pytest.raises(TargetError, match="cannot scale to 4") as info:
        Targets(kube, pods=list).scale(Targets(cluster(), pods=list).read("ml", REF), 4)
    assert info.value.reason == "FailedUpdateScale"


def test_the_pods_are_the_live_ones_the_selector_picks_in_the_namespace_by_name() -> None:
    cached = [
        pod("llm-b"),
        pod("llm-a"),
        pod("other", labels={"app": "web"}),
        pod("batch", labels={"app": "llm", "tier": "batch"}),
        pod("elsewhere", namespace="prod"),
        pod("done", phase="Succeeded"),
        pod("failed", phase="Failed"),
        pod("leaving", deleting=True),
    ]
    targets = Targets(FakeKube(), pods=lambda: cached)
    assert [p["metadata"]["name"] for p in targets.pods("ml", "app=llm,tier!=batch")] == [
        "llm-a",
        "llm-b",
    ]
    with pytest.raises(TargetError, match="cannot list the target's pods") as info:
        targets.pods("ml", "app in (llm")
    assert info.value.reason == "FailedGetPods"


def test_an_hpa_on_the_same_workload_is_a_rival_and_none_is_seen_without_the_api() -> None:
    hpas = "/apis/autoscaling/v1/namespaces/ml/horizontalpodautoscalers"
    kube = FakeKube().on(
        "GET",
        hpas,
        {
            "items": [
                {
                    "metadata": {"name": "other"},
                    "spec": {
                        "scaleTargetRef": {
                            "apiVersion": "apps/v1",
                            "kind": "Deployment",
                            "name": "web",
                        }
                    },
                },
                {
                    "metadata": {"name": "rival"},
                    "spec": {
                        "scaleTargetRef": {
                            "apiVersion": "apps/v1beta2",
                            "kind": "Deployment",
                            "name": "llm",
                        }
                    },
                },
            ]
        },
    )
    assert Targets(kube, pods=list).rival_hpa("ml", REF) == "rival"
    assert Targets(FakeKube(), pods=list).rival_hpa("ml", REF) is None
