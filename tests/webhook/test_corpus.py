"""The corpus of realistic model-serving pods, mutated through the whole review path and checked
field by field. (That each mutated pod is a valid Pod is checked by the real API server, with a
server-side dry-run create, in tests/e2e/test_webhook.py: its validation is the schema.)"""

from __future__ import annotations

from typing import Any

import pytest

from tests.webhook.helpers import (
    applied,
    corpus,
    encode,
    lost,
    patch_of,
    review_body,
    shipped_profiles,
)
from webhook.mutate import MUTATED_BY_ANNOTATION, visible_devices_env
from webhook.review import review

PROFILES = shipped_profiles()
CORPUS = corpus()
PRESENT = {"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
GATE = [{"conditionType": "headroom.dev/gpu-ready"}]
VISIBLE = visible_devices_env("NVIDIA_VISIBLE_DEVICES")


def gt(mib_minus_one: int) -> dict[str, Any]:
    return {"key": "nvidia.com/gpu.memory", "operator": "Gt", "values": [str(mib_minus_one)]}


def mutated(name: str) -> dict[str, Any]:
    body: dict[str, Any] = dict(
        review(encode(review_body(CORPUS[name])), PROFILES, version="0.1.0").body
    )
    response: dict[str, Any] = body["response"]
    assert response["allowed"] is True, response
    return applied(CORPUS[name], response)


def node_affinity(pod: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = pod["spec"]["affinity"]["nodeAffinity"]
    return result


def required_terms(pod: dict[str, Any]) -> list[dict[str, Any]]:
    terms: list[dict[str, Any]] = node_affinity(pod)[
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]["nodeSelectorTerms"]
    return terms


def env_of(pod: dict[str, Any], index: int) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = pod["spec"]["containers"][index].get("env", [])
    return env


def profile_of(pod: dict[str, Any]) -> str:
    return str(pod["metadata"]["annotations"][MUTATED_BY_ANNOTATION].split()[1])


def test_the_corpus_has_the_pods_the_issue_lists() -> None:
    assert set(CORPUS) == {
        "vllm",
        "tgi",
        "triton",
        "kserve-predictor",
        "sidecar",
        "existing-affinity",
    }


def test_vllm_gets_the_default_profile() -> None:
    pod = mutated("vllm")
    assert pod["spec"]["tolerations"] == [GPU_TOLERATION]
    assert required_terms(pod) == [{"matchExpressions": [PRESENT, gt(20 * 1024 - 1)]}]
    assert "preferredDuringSchedulingIgnoredDuringExecution" not in node_affinity(pod)
    assert pod["spec"]["readinessGates"] == GATE
    assert pod["spec"]["schedulerName"] == "headroom"
    assert env_of(pod, 0) == CORPUS["vllm"]["spec"]["containers"][0]["env"]
    assert profile_of(pod) == "profile=default"


def test_tgi_gets_the_gpu_large_profile() -> None:
    pod = mutated("tgi")
    assert required_terms(pod) == [{"matchExpressions": [PRESENT, gt(76 * 1024 - 1)]}]
    preferred = node_affinity(pod)["preferredDuringSchedulingIgnoredDuringExecution"]
    assert preferred == [
        {
            "weight": 50,
            "preference": {
                "matchExpressions": [
                    {
                        "key": "nvidia.com/gpu.family",
                        "operator": "In",
                        "values": ["ampere", "hopper"],
                    }
                ]
            },
        }
    ]
    assert pod["spec"]["schedulerName"] == "headroom"  # was default-scheduler
    assert pod["spec"]["tolerations"] == [GPU_TOLERATION]
    assert profile_of(pod) == "profile=gpu-large"


def test_triton_in_shared_mode_gets_the_visible_devices_variable() -> None:
    pod = mutated("triton")
    assert env_of(pod, 0) == [{"name": "AWS_REGION", "value": "eu-west-1"}, VISIBLE]
    assert required_terms(pod) == [{"matchExpressions": [PRESENT, gt(6 * 1024 - 1)]}]
    assert pod["spec"]["securityContext"] == {"runAsUser": 1000, "fsGroup": 1000}
    assert profile_of(pod) == "profile=shared-small"


def test_the_kserve_predictor_keeps_its_init_container_and_owner() -> None:
    pod = mutated("kserve-predictor")
    original = CORPUS["kserve-predictor"]
    assert required_terms(pod) == [{"matchExpressions": [PRESENT, gt(15 * 1024 - 1)]}]
    assert pod["spec"]["initContainers"] == original["spec"]["initContainers"]
    assert pod["metadata"]["ownerReferences"] == original["metadata"]["ownerReferences"]
    assert pod["metadata"]["generateName"] == original["metadata"]["generateName"]
    assert pod["spec"]["readinessGates"] == GATE


def test_the_sidecar_pod_shares_the_gpu_with_each_app_container_that_does_not_opt_out() -> None:
    pod = mutated("sidecar")
    assert env_of(pod, 0) == [VISIBLE]  # the server
    assert env_of(pod, 1) == [VISIBLE]  # fluent-bit: no container asks
    assert env_of(pod, 2) == [{"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"}]  # its own
    assert required_terms(pod) == [{"matchExpressions": [PRESENT, gt(3 * 1024 - 1)]}]


def test_a_pod_with_its_own_placement_keeps_it_and_gains_the_gpu_requirement() -> None:
    pod = mutated("existing-affinity")
    original = CORPUS["existing-affinity"]
    need = gt(40000 - 1)
    assert required_terms(pod) == [
        {
            "matchExpressions": [
                {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["eu-west-1a"]},
                {"key": "node.kubernetes.io/lifecycle", "operator": "NotIn", "values": ["spot"]},
                PRESENT,
                need,
            ]
        },
        {
            "matchExpressions": [
                {"key": "node.kubernetes.io/lifecycle", "operator": "In", "values": ["spot"]},
                PRESENT,
                need,
            ]
        },
    ]
    assert pod["spec"]["tolerations"] == original["spec"]["tolerations"]  # already tolerated
    assert (
        node_affinity(pod)["preferredDuringSchedulingIgnoredDuringExecution"]
        == node_affinity(original)["preferredDuringSchedulingIgnoredDuringExecution"]
    )
    assert (
        pod["spec"]["affinity"]["podAntiAffinity"]
        == original["spec"]["affinity"]["podAntiAffinity"]
    )
    assert pod["spec"]["schedulerName"] == "volcano"  # a scheduler the pod chose is kept
    assert pod["spec"]["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["spec"]["readinessGates"] == GATE


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_each_corpus_pod_loses_nothing_and_a_second_pass_adds_nothing(name: str) -> None:
    pod = mutated(name)
    assert lost(CORPUS[name], pod) == {}
    again = review(encode(review_body(pod)), PROFILES, version="0.1.0")
    assert patch_of(again.body["response"]) == []  # type: ignore[typeddict-item,arg-type]
    assert again.result == "unchanged"
