"""`webhook.claims`, the webhook's edge to the API, against the fake API: which objects it GETs
(and which it does not), with what timeout, and what a missing or unreadable one becomes."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from headroom.demand import DemandError, GpuDemand
from kubeapi.client import ApiError, Unreachable
from tests.kubeapi.fake import Call, FakeKube
from tests.webhook.helpers import GPU_REQUEST, claim, dra_pod, gpu_pod, template
from webhook.claims import READ_TIMEOUT_SECONDS, ClaimReader, access_problem, object_path
from webhook.config import WebhookConfig
from webhook.dra import pod_demand

BASE = "/apis/resource.k8s.io/v1/namespaces/ns"
TEMPLATE_PATH = f"{BASE}/resourceclaimtemplates/one-gpu"
CLAIM_PATH = f"{BASE}/resourceclaims/shared"
FROM_TEMPLATE = {"name": "gpu", "resourceClaimTemplateName": "one-gpu"}
FROM_CLAIM = {"name": "shared", "resourceClaimName": "shared"}


def reader(
    kube: FakeKube, *, clock: Callable[[], float] = time.monotonic, budget_seconds: float = 3.0
) -> ClaimReader:
    return ClaimReader(
        kube, device_classes=("gpu.nvidia.com",), clock=clock, budget_seconds=budget_seconds
    )


def test_the_paths() -> None:
    assert object_path("ResourceClaimTemplate", "ns", "one-gpu") == TEMPLATE_PATH
    assert object_path("ResourceClaim", "ns", "shared") == CLAIM_PATH


def test_a_pods_claim_and_template_are_read_in_its_namespace_with_a_short_timeout() -> None:
    kube = (
        FakeKube()
        .on("GET", TEMPLATE_PATH, template("one-gpu", GPU_REQUEST))
        .on("GET", CLAIM_PATH, claim("shared", {**GPU_REQUEST, "count": 2}))
    )
    pod = dra_pod(FROM_TEMPLATE, FROM_CLAIM)
    found = reader(kube).lookups("ns", pod)
    assert kube.requests() == [f"GET {TEMPLATE_PATH}", f"GET {CLAIM_PATH}"]
    assert all(
        c.timeout_seconds is not None and c.timeout_seconds <= READ_TIMEOUT_SECONDS
        for c in kube.calls
    )
    assert pod_demand(pod, found, namespace="ns") == GpuDemand(gpu_count=3, dra=True)


def test_a_pod_without_claims_costs_no_request() -> None:
    kube = FakeKube()
    reader(kube).lookups("ns", gpu_pod())
    assert kube.calls == []


def test_a_malformed_claim_reference_reads_nothing() -> None:
    kube = FakeKube()
    reader(kube).lookups("ns", dra_pod({"name": "gpu"}))
    assert kube.calls == []


def test_each_object_is_read_once() -> None:
    kube = FakeKube().on("GET", TEMPLATE_PATH, template("one-gpu", GPU_REQUEST))
    pod = dra_pod(FROM_TEMPLATE, {"name": "gpu2", "resourceClaimTemplateName": "one-gpu"})
    found = reader(kube).lookups("ns", pod)
    assert kube.requests() == [f"GET {TEMPLATE_PATH}"]
    assert pod_demand(pod, found, namespace="ns") == GpuDemand(gpu_count=2, dra=True)


def test_a_template_not_found_is_named_by_the_review() -> None:
    kube = FakeKube()  # every path: NotFound
    pod = dra_pod(FROM_TEMPLATE)
    reads = reader(kube).read("ns", pod)
    assert reads.templates == {} and reads.failures == {}
    with pytest.raises(DemandError) as info:
        pod_demand(pod, reader(kube).lookups("ns", pod), namespace="ns")
    assert str(info.value).startswith(
        'spec.resourceClaims[0].resourceClaimTemplateName: ResourceClaimTemplate "one-gpu" '
        'not found in namespace "ns"'
    )


def test_an_unreachable_api_server_is_a_failure_naming_the_error() -> None:
    kube = FakeKube().on("GET", TEMPLATE_PATH, Unreachable("GET x: cannot reach the API server"))
    reads = reader(kube).read("ns", dra_pod(FROM_TEMPLATE))
    assert reads.failures == {
        ("ResourceClaimTemplate", "one-gpu"): "GET x: cannot reach the API server"
    }


def test_a_forbidden_read_is_a_failure_too() -> None:
    kube = FakeKube().on("GET", CLAIM_PATH, ApiError(403, "forbidden"))
    reads = reader(kube).read("ns", dra_pod(FROM_CLAIM))
    assert reads.failures == {("ResourceClaim", "shared"): "HTTP 403: forbidden"}


def test_the_reads_share_one_budget() -> None:
    now = [0.0]

    def slow(call: Call) -> dict[str, object]:
        now[0] += 2.5  # each read takes 2.5 s of the 3 s budget
        return template("one-gpu", GPU_REQUEST)

    other = f"{BASE}/resourceclaimtemplates/other"
    kube = FakeKube().on("GET", TEMPLATE_PATH, slow).on("GET", other, slow)
    pod = dra_pod(FROM_TEMPLATE, {"name": "b", "resourceClaimTemplateName": "other"})
    reads = reader(kube, clock=lambda: now[0], budget_seconds=3.0).read("ns", pod)
    assert kube.calls[1].timeout_seconds == 0.5  # what was left of the budget
    assert reads.failures == {}
    now[0] = 0.0
    kube.calls.clear()
    reads = reader(kube, clock=lambda: now[0], budget_seconds=2.0).read("ns", pod)
    assert kube.requests() == [f"GET {TEMPLATE_PATH}"]
    assert reads.failures == {
        ("ResourceClaimTemplate", "other"): "not read: 2 s spent on the others"
    }


def test_no_api_access_is_no_problem_and_a_missing_kubeconfig_is(tmp_path: Path) -> None:
    profiles = tmp_path / "profiles.yaml"
    assert access_problem(WebhookConfig(profiles=profiles)) is None
    missing = str(tmp_path / "nope")
    problem = access_problem(WebhookConfig(profiles=profiles, kubeconfig=missing))
    assert problem == f"--kubeconfig: cannot configure API access: no such file {missing!r}"
