"""Reviews of pods whose GPUs come from DRA claims, with the claims the app read passed in: what
counts as a GPU, what is denied naming which field, and the patch (no GPU-feature-discovery
affinity, no visible-devices env; the gate and the scheduler as for any managed pod)."""

from __future__ import annotations

from typing import Any

import pytest

from headroom.demand import GpuDemand
from headroom.podclaims import DraLookups
from tests.webhook.helpers import (
    GPU_REQUEST,
    applied,
    claim,
    dra_pod,
    encode,
    gpu_pod,
    patch_of,
    review_body,
    shipped_profiles,
    template,
)
from webhook.dra import ClaimReads, lookups, pod_demand, without_api_access
from webhook.review import Request, ReviewOutcome, claims_to_read, read, review

PROFILES = shipped_profiles()
GI = 2**30
FROM_TEMPLATE = {"name": "gpu", "resourceClaimTemplateName": "one-gpu"}
FROM_CLAIM = {"name": "gpu", "resourceClaimName": "two-gpus"}
READS = ClaimReads(
    templates={
        "one-gpu": template("one-gpu", GPU_REQUEST),
        "other-class": template("other-class", {"deviceClassName": "nic.example.com"}),
        "all-gpus": template("all-gpus", {**GPU_REQUEST, "allocationMode": "All"}),
        "slice-4gi": template(
            "slice-4gi", {**GPU_REQUEST, "capacity": {"requests": {"memory": "4Gi"}}}
        ),
        "zero": template("zero", {**GPU_REQUEST, "count": 0}),
    },
    claims={
        "two-gpus": claim("two-gpus", {**GPU_REQUEST, "allocationMode": "ExactCount", "count": 2})
    },
)
LOOKUPS = lookups(READS)


def answer(
    pod: dict[str, Any], claims: DraLookups = LOOKUPS, *, namespace_opted_in: bool = False
) -> tuple[dict[str, Any], ReviewOutcome]:
    outcome = review(
        encode(review_body(pod)),
        PROFILES,
        version="0.1.0",
        namespace_opted_in=namespace_opted_in,
        lookups=claims,
    )
    body: dict[str, Any] = dict(outcome.body)
    response: dict[str, Any] = body["response"]
    return response, outcome


def denial(pod: dict[str, Any], claims: DraLookups = LOOKUPS, **kwargs: Any) -> str:
    response, outcome = answer(pod, claims, **kwargs)
    assert response["allowed"] is False and outcome.result == "denied", response
    message: str = response["status"]["message"]
    return message


def demand(*entries: dict[str, Any], claims: DraLookups = LOOKUPS) -> GpuDemand | None:
    return pod_demand(dra_pod(*entries), claims, namespace="ns")


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (FROM_TEMPLATE, GpuDemand(gpu_count=1, dra=True)),
        (FROM_CLAIM, GpuDemand(gpu_count=2, dra=True)),
        (
            {"name": "gpu", "resourceClaimTemplateName": "all-gpus"},
            GpuDemand(gpu_count=0, dra=True, all_gpus=True),
        ),
        (
            {"name": "gpu", "resourceClaimTemplateName": "slice-4gi"},
            GpuDemand(gpu_count=1, memory_bytes=4 * GI, shared=True, dra=True),
        ),
        ({"name": "nic", "resourceClaimTemplateName": "other-class"}, None),
    ],
)
def test_the_claims_make_the_demand(entry: dict[str, Any], expected: GpuDemand | None) -> None:
    assert demand(entry) == expected


def test_the_device_classes_are_a_setting() -> None:
    nics = lookups(READS, device_classes=("nic.example.com",))
    entry = {"name": "nic", "resourceClaimTemplateName": "other-class"}
    assert demand(entry, claims=nics) == GpuDemand(gpu_count=1, dra=True)
    assert demand(FROM_TEMPLATE, claims=nics) is None


def test_a_pod_with_a_gpu_from_a_template_gets_the_gate_and_scheduler_and_no_gfd_affinity() -> None:
    pod = dra_pod(FROM_TEMPLATE, annotations={"headroom.dev/gpu-memory": "20Gi"})
    response, outcome = answer(pod)
    assert outcome.result == "patched"
    mutated = applied(pod, response)
    spec = mutated["spec"]
    assert spec["schedulerName"] == "headroom"
    assert spec["readinessGates"] == [{"conditionType": "headroom.dev/gpu-ready"}]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec[
        "tolerations"
    ]
    assert "affinity" not in spec
    assert "env" not in spec["containers"][0]
    # The second pass (reinvocation) changes nothing.
    again, second = answer(mutated)
    assert second.result == "unchanged" and patch_of(again) == []


def test_a_claim_sharing_a_gpu_is_not_held_to_the_annotations_shared_mode_rules() -> None:
    # gpu-large does not allow annotation sharing; a claim's memory share is the DRA driver's
    # to set up, so neither that switch, nor the scheduler rule, nor an env var applies.
    pod = dra_pod(
        {"name": "gpu", "resourceClaimTemplateName": "slice-4gi"},
        annotations={"headroom.dev/profile": "gpu-large"},
        spec={"schedulerName": "other-scheduler"},
    )
    response, outcome = answer(pod)
    assert outcome.result == "patched", response
    mutated = applied(pod, response)
    assert mutated["spec"]["schedulerName"] == "other-scheduler"
    assert "env" not in mutated["spec"]["containers"][0]
    node = mutated["spec"]["affinity"]["nodeAffinity"]  # gpu-large's preferred terms only
    assert "requiredDuringSchedulingIgnoredDuringExecution" not in node


def test_the_profiles_preferred_terms_are_kept() -> None:
    pod = dra_pod(FROM_TEMPLATE, annotations={"headroom.dev/profile": "gpu-large"})
    mutated = applied(pod, answer(pod)[0])
    node = mutated["spec"]["affinity"]["nodeAffinity"]
    assert list(node) == ["preferredDuringSchedulingIgnoredDuringExecution"]


def test_claims_count_toward_the_profiles_max_gpus() -> None:
    pod = dra_pod(FROM_CLAIM, annotations={"headroom.dev/profile": "shared-small"})
    assert denial(pod).startswith(
        "spec.resourceClaims: the pod asks for 2 GPUs but profile 'shared-small'"
    )


def test_a_claim_of_another_device_class_asks_no_gpu() -> None:
    nic = {"name": "nic", "resourceClaimTemplateName": "other-class"}
    response, outcome = answer(dra_pod(nic))
    assert outcome.result == "ignored" and "patch" not in response
    assert "no ResourceClaim of a GPU DeviceClass" in response["warnings"][0]
    unlabelled = dra_pod(nic)
    del unlabelled["metadata"]["labels"]
    response, outcome = answer(unlabelled, namespace_opted_in=True)
    assert outcome.result == "ignored" and "warnings" not in response


def test_a_missing_template_is_denied_naming_the_field() -> None:
    missing = {"name": "gpu", "resourceClaimTemplateName": "x"}
    message = denial(dra_pod(FROM_TEMPLATE, missing))
    assert message.startswith(
        'spec.resourceClaims[1].resourceClaimTemplateName: ResourceClaimTemplate "x" not found '
        'in namespace "ns"'
    ), message
    assert "retries" in message
    unlabelled = dra_pod(missing)
    del unlabelled["metadata"]["labels"]
    assert denial(unlabelled, namespace_opted_in=True).startswith(
        "spec.resourceClaims[0].resourceClaimTemplateName: "
    )


def test_a_missing_claim_is_denied_naming_the_field() -> None:
    message = denial(dra_pod({"name": "gpu", "resourceClaimName": "gone"}))
    assert message.startswith(
        'spec.resourceClaims[0].resourceClaimName: ResourceClaim "gone" not found in namespace "ns"'
    )


def test_a_claim_that_could_not_be_read_is_denied_naming_the_field_and_the_error() -> None:
    failed = lookups(
        ClaimReads(failures={("ResourceClaimTemplate", "one-gpu"): "HTTP 403: forbidden"})
    )
    assert denial(dra_pod(FROM_TEMPLATE), failed) == (
        'spec.resourceClaims[0].resourceClaimTemplateName: ResourceClaimTemplate "one-gpu" in '
        'namespace "ns" could not be read: HTTP 403: forbidden'
    )


def test_without_api_access_a_pod_with_claims_is_denied_naming_the_flags() -> None:
    message = denial(dra_pod(FROM_TEMPLATE), without_api_access())
    assert message.startswith("spec.resourceClaims[0].resourceClaimTemplateName: ")
    assert "started without API access" in message and "--in-cluster" in message
    # Pods without claims are reviewed as ever.
    assert answer(gpu_pod(), without_api_access())[1].result == "patched"


def test_the_sharing_annotation_on_a_dra_pod_is_denied() -> None:
    pod = dra_pod(FROM_TEMPLATE, annotations={"headroom.dev/gpu-sharing": "true"})
    assert denial(pod).startswith("headroom.dev/gpu-sharing: is for device-plugin pods")


def test_a_malformed_template_is_denied_naming_its_field() -> None:
    message = denial(dra_pod({"name": "gpu", "resourceClaimTemplateName": "zero"}))
    assert message.startswith(
        "ResourceClaimTemplate zero: spec.spec.devices.requests[0].exactly.count"
    )


def test_a_malformed_claim_reference_is_denied_naming_it() -> None:
    message = denial(dra_pod({"name": "gpu"}))
    assert message.startswith("spec.resourceClaims[0]: ")


def test_which_requests_have_claims_to_read() -> None:
    def target(pod: Any, *, opted_in: bool = False, **request: Any) -> Any:
        parsed = read(encode(review_body(pod, **request)))
        assert isinstance(parsed, Request)
        return claims_to_read(parsed, namespace_opted_in=opted_in)

    pod = dra_pod(FROM_TEMPLATE)
    assert target(pod) == ("ns", pod)
    assert target(gpu_pod()) is None  # no claims
    assert target(pod, operation="UPDATE") is None
    unlabelled = dra_pod(FROM_TEMPLATE, labels={})
    unlabelled["metadata"]["labels"] = {"app": "x"}
    assert target(unlabelled) is None
    assert target(unlabelled, opted_in=True) == ("ns", unlabelled)
    assert target("not a pod") is None
