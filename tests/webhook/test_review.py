"""One AdmissionReview in, one answer out: what is refused with HTTP 400, what is allowed
untouched, what is denied with which message, and the patch of a managed GPU pod."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.webhook.helpers import (
    applied,
    encode,
    gpu_pod,
    patch_of,
    review_body,
    shipped_profiles,
)
from webhook import review as review_module
from webhook.mutate import MUTATED_BY_ANNOTATION
from webhook.profiles import parse_profiles
from webhook.review import review

PROFILES = shipped_profiles()


def answer(body: Any) -> review_module.ReviewOutcome:
    return review(body if isinstance(body, bytes) else encode(body), PROFILES, version="0.1.0")


def response_of(outcome: review_module.ReviewOutcome) -> dict[str, Any]:
    assert outcome.status == 200
    body: dict[str, Any] = dict(outcome.body)
    assert body["apiVersion"] == "admission.k8s.io/v1" and body["kind"] == "AdmissionReview"
    response: dict[str, Any] = body["response"]
    return response


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "body"),
        (b"\xff\xfe\x00garbage", "body"),
        (b"[" * 100_000, "body"),
        (b'{"apiVersion": NaN}', "body"),
        (b"[]", "body"),
        (
            {
                "apiVersion": "admission.k8s.io/v1beta1",
                "kind": "AdmissionReview",
                "request": {"uid": "u"},
            },
            "apiVersion",
        ),
        ({"apiVersion": "admission.k8s.io/v1", "kind": "Pod", "request": {"uid": "u"}}, "kind"),
        ({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}, "request"),
        (
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {}},
            "request.uid",
        ),
        (
            {
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "request": {"uid": ""},
            },
            "request.uid",
        ),
        (
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": 7}},
            "request.uid",
        ),
    ],
)
def test_what_is_not_an_admission_review_gets_400_naming_the_field(body: Any, field: str) -> None:
    outcome = answer(body)
    assert outcome.status == 400
    assert outcome.result == "invalid"
    assert outcome.body["field"] == field  # type: ignore[typeddict-item]
    assert outcome.body["error"].startswith(f"{field}: ")  # type: ignore[typeddict-item]


@pytest.mark.parametrize(
    "body",
    [
        review_body(gpu_pod(), kind={"group": "apps", "version": "v1", "kind": "Deployment"}),
        review_body(gpu_pod(), operation="UPDATE"),
        review_body(gpu_pod(), operation="DELETE"),
        review_body(gpu_pod(labels={"headroom.dev/managed": "false"})),
        review_body({"metadata": {"name": "plain"}, "spec": {"containers": [{"name": "c"}]}}),
        {
            **review_body(gpu_pod()),
            "request": {**review_body(gpu_pod())["request"], "subResource": "status"},
        },
    ],
    ids=["deployment", "update", "delete", "managed-false", "unlabelled", "subresource"],
)
def test_other_objects_operations_and_unmanaged_pods_are_allowed_untouched(
    body: dict[str, Any],
) -> None:
    outcome = answer(body)
    response = response_of(outcome)
    assert response == {"uid": "uid-1", "allowed": True}
    assert outcome.result == "ignored"


def test_a_managed_pod_asking_for_no_gpu_is_left_alone_with_a_warning() -> None:
    response = response_of(answer(review_body(gpu_pod(gpus=None))))
    assert response["allowed"] is True and "patch" not in response
    assert "asks for no GPU" in response["warnings"][0]


@pytest.mark.parametrize(
    ("annotations", "gpus", "message"),
    [
        (
            {"headroom.dev/gpu-memory": "lots"},
            "1",
            "headroom.dev/gpu-memory: not a quantity (got 'lots'; expected a Kubernetes quantity "
            'of bytes such as "20Gi", "512Mi" or "1e9")',
        ),
        ({"headroom.dev/gpu-memory": "0"}, "1", "headroom.dev/gpu-memory: must be more than 0"),
        (
            {"headroom.dev/profile": "huge"},
            "1",
            "headroom.dev/profile: unknown profile 'huge' (expected one of: default, gpu-large, "
            "shared-small)",
        ),
        (
            {},
            "9",
            "nvidia.com/gpu: the pod asks for 9 GPUs but profile 'default' "
            "(headroom.dev/profile) allows at most 8",
        ),
        (
            {"headroom.dev/profile": "shared-small", "headroom.dev/gpu-memory": "1Gi"},
            "2",
            "nvidia.com/gpu: the pod asks for 2 GPUs but profile 'shared-small'",
        ),
        (
            {"headroom.dev/gpu-sharing": "yes"},
            "1",
            'headroom.dev/gpu-sharing: must be "true" or "false" (got \'yes\')',
        ),
        ({"headroom.dev/gpu-sharing": "true"}, None, "headroom.dev/gpu-memory: is required with"),
        (
            {
                "headroom.dev/profile": "gpu-large",
                "headroom.dev/gpu-sharing": "true",
                "headroom.dev/gpu-memory": "1Gi",
            },
            None,
            "headroom.dev/gpu-sharing: profile 'gpu-large' does not allow shared GPUs",
        ),
        ({}, "two", "spec.containers[0].resources.limits[nvidia.com/gpu]: must be a whole number"),
    ],
)
def test_bad_annotations_deny_the_pod_naming_the_annotation(
    annotations: dict[str, str], gpus: str | None, message: str
) -> None:
    outcome = answer(review_body(gpu_pod(annotations=annotations, gpus=gpus)))
    response = response_of(outcome)
    assert response["allowed"] is False and "patch" not in response
    assert response["status"]["code"] == 400
    assert response["status"]["message"].startswith(message), response["status"]["message"]
    assert outcome.result == "denied"
    assert outcome.log["message"] == response["status"]["message"]


def test_a_gpu_sidecar_counts_toward_max_gpus() -> None:
    # An 8-GPU server with a 1-GPU native sidecar takes 9 GPUs: over the default profile's 8.
    sidecar = {
        "name": "monitor",
        "image": "example/monitor:1",
        "restartPolicy": "Always",
        "resources": {"limits": {"nvidia.com/gpu": "1"}},
    }
    response = response_of(
        answer(review_body(gpu_pod(gpus="8", spec={"initContainers": [sidecar]})))
    )
    assert response["allowed"] is False
    assert response["status"]["message"].startswith(
        "nvidia.com/gpu: the pod asks for 9 GPUs but profile 'default'"
    )


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        ("a pod", "request.object"),
        ({"metadata": [], "spec": {}}, "metadata"),
        (
            {"metadata": {"labels": {"headroom.dev/managed": 1}}},
            "metadata.labels[headroom.dev/managed]",
        ),
        (
            {"metadata": {"labels": {"headroom.dev/managed": "true"}}, "spec": {"containers": {}}},
            "spec.containers",
        ),
        (
            {
                "metadata": {"labels": {"headroom.dev/managed": "true"}},
                "spec": {"containers": [{"resources": {"limits": []}}]},
            },
            "spec.containers[0].resources.limits",
        ),
    ],
)
def test_a_malformed_pod_is_denied_naming_the_field(obj: Any, field: str) -> None:
    response = response_of(answer(review_body(obj)))
    assert response["allowed"] is False
    assert response["status"]["message"].startswith(f"{field}: expected")


def test_a_managed_gpu_pod_gets_a_patch_that_yields_the_mutation() -> None:
    pod = gpu_pod(annotations={"headroom.dev/gpu-memory": "20Gi"})
    outcome = answer(review_body(pod))
    response = response_of(outcome)
    assert response["allowed"] is True and response["uid"] == "uid-1"
    operations = patch_of(response)
    assert outcome.result == "patched" and outcome.operations == len(operations) > 0
    assert outcome.profile == "default"
    mutated = applied(pod, response)
    assert mutated["spec"]["schedulerName"] == "headroom"
    assert mutated["metadata"]["annotations"][MUTATED_BY_ANNOTATION].startswith(
        "webhook/0.1.0 profile=default rev="
    )
    assert {op["op"] for op in operations} <= {"add"}  # nothing replaced or removed


def test_the_mutated_pod_reviewed_again_gets_no_patch() -> None:
    pod = gpu_pod(
        annotations={"headroom.dev/gpu-memory": "20Gi"}, spec={"schedulerName": "default-scheduler"}
    )
    mutated = applied(pod, response_of(answer(review_body(pod))))
    outcome = answer(review_body(mutated))
    assert response_of(outcome) == {"uid": "uid-1", "allowed": True}
    assert outcome.result == "unchanged"


def test_dry_run_is_answered_like_any_request() -> None:
    pod = gpu_pod()
    assert patch_of(response_of(answer(review_body(pod, dry_run=True)))) == patch_of(
        response_of(answer(review_body(pod)))
    )


def test_a_bug_becomes_a_denial_with_the_uid_not_an_http_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("surprise")

    monkeypatch.setattr(review_module, "mutate_with_patch", broken)
    outcome = answer(review_body(gpu_pod(), uid="u-42"))
    response = response_of(outcome)
    assert response["uid"] == "u-42" and response["allowed"] is False
    assert "internal error" in response["status"]["message"]
    assert outcome.result == "error"


def test_the_response_is_plain_json() -> None:
    outcome = answer(review_body(gpu_pod()))
    assert json.loads(json.dumps(outcome.body)) == outcome.body


def unlabelled(pod: dict[str, Any]) -> dict[str, Any]:
    pod["metadata"]["labels"].pop("headroom.dev/managed")
    return pod


def test_in_an_opted_in_namespace_gpu_pods_are_managed_without_a_label() -> None:
    pod = unlabelled(gpu_pod(annotations={"headroom.dev/gpu-memory": "20Gi"}))
    body = encode(review_body(pod))
    assert response_of(answer(body)) == {"uid": "uid-1", "allowed": True}  # the pod webhook
    outcome = review(body, PROFILES, version="0.1.0", namespace_opted_in=True)
    assert outcome.result == "patched"
    assert applied(pod, response_of(outcome))["spec"]["schedulerName"] == "headroom"


def test_in_an_opted_in_namespace_pods_without_gpus_pass_silently() -> None:
    pod = unlabelled(gpu_pod(gpus=None))
    outcome = review(encode(review_body(pod)), PROFILES, version="0.1.0", namespace_opted_in=True)
    assert response_of(outcome) == {"uid": "uid-1", "allowed": True}  # no warning either
    assert outcome.result == "ignored"


def test_in_an_opted_in_namespace_bad_annotations_are_still_refused() -> None:
    pod = unlabelled(gpu_pod(annotations={"headroom.dev/gpu-memory": "lots"}))
    outcome = review(encode(review_body(pod)), PROFILES, version="0.1.0", namespace_opted_in=True)
    response = response_of(outcome)
    assert response["allowed"] is False
    assert response["status"]["message"].startswith("headroom.dev/gpu-memory: not a quantity")


SHARED = {
    "headroom.dev/profile": "shared-small",
    "headroom.dev/gpu-sharing": "true",
    "headroom.dev/gpu-memory": "4Gi",
}


def test_a_shared_pod_headroom_binds_is_admitted() -> None:
    for spec in ({}, {"schedulerName": "default-scheduler"}, {"schedulerName": "headroom"}):
        response = response_of(
            answer(review_body(gpu_pod(annotations=SHARED, gpus=None, spec=spec)))
        )
        assert response["allowed"] is True, (spec, response)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"nodeName": "gpu-node-1"}, "spec.nodeName: a pod with headroom.dev/gpu-sharing"),
        (
            {"schedulerName": "volcano"},
            'spec.schedulerName: a pod with headroom.dev/gpu-sharing: "true" must be placed by '
            "Headroom's scheduler 'headroom', which chooses its GPU at bind (got 'volcano'",
        ),
    ],
)
def test_a_shared_pod_headroom_would_not_bind_is_denied_naming_the_field(
    spec: dict[str, Any], message: str
) -> None:
    # It would start with an empty visible-devices variable: on no GPU at all.
    outcome = answer(review_body(gpu_pod(annotations=SHARED, gpus=None, spec=spec)))
    response = response_of(outcome)
    assert response["allowed"] is False and "patch" not in response
    assert response["status"]["message"].startswith(message), response["status"]["message"]


def test_sharing_under_a_profile_without_a_scheduler_is_denied() -> None:
    profiles = parse_profiles(
        "profiles:\n  default: {}\n"
        "  shared-small: {sharing: {allowed: true}, schedulerName: null}\n"
    )
    body = encode(review_body(gpu_pod(annotations=SHARED, gpus=None)))
    response = response_of(review(body, profiles, version="0.1.0"))
    assert response["allowed"] is False
    assert response["status"]["message"].startswith(
        "headroom.dev/gpu-sharing: profile 'shared-small' sets no schedulerName"
    ), response["status"]["message"]


def test_a_shared_pod_that_also_asks_the_device_plugin_is_denied_naming_the_container() -> None:
    # The device plugin would hand it a whole GPU of its own choosing, maybe not Headroom's.
    outcome = answer(review_body(gpu_pod(annotations=SHARED, gpus="1")))
    response = response_of(outcome)
    assert response["allowed"] is False
    assert response["status"]["message"].startswith(
        "spec.containers[0].resources.limits[nvidia.com/gpu]: a pod with "
        'headroom.dev/gpu-sharing: "true" gets its GPU when Headroom binds it'
    ), response["status"]["message"]
    sidecar = gpu_pod(annotations=SHARED, gpus=None)
    sidecar["spec"]["initContainers"] = [
        {"name": "warm", "image": "w:1", "resources": {"requests": {"nvidia.com/gpu": "1"}}}
    ]
    response = response_of(answer(review_body(sidecar)))
    assert response["status"]["message"].startswith(
        "spec.initContainers[0].resources.requests[nvidia.com/gpu]: "
    ), response["status"]["message"]
