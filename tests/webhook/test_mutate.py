"""The pure mutation, case by case: each injection, each merge with what the pod already has,
and the rules that make it safe (input untouched, nothing removed, a second pass changes
nothing)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from headroom import names
from headroom.demand import GpuDemand
from tests.webhook.helpers import gpu_pod
from webhook.mutate import (
    MUTATED_BY_ANNOTATION,
    MutationError,
    memory_requirement,
    mutate,
    tolerates,
    visible_devices_env,
)
from webhook.profiles import Profile, parse_profile

GI = 2**30
PRESENT = {"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
DEFAULT = parse_profile("default", {})
ONE_GPU = GpuDemand(gpu_count=1)
NEEDS_20GI = GpuDemand(gpu_count=1, memory_bytes=20 * GI)
SHARED = GpuDemand(gpu_count=1, memory_bytes=4 * GI, shared=True)
REQUIRED = ("affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution")


def run(
    pod: dict[str, Any], profile: Profile = DEFAULT, demand: GpuDemand = ONE_GPU
) -> dict[str, Any]:
    return mutate(pod, profile, demand=demand, version="9.9.9")


def dig(obj: Any, *keys: str) -> Any:
    for key in keys:
        obj = obj[key]
    return obj


def terms(pod: dict[str, Any]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = dig(pod["spec"], *REQUIRED)["nodeSelectorTerms"]
    return result


# -- memory term -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("memory_bytes", "gt"),
    [
        (20 * GI, "20479"),  # exactly 20480 MiB: nodes labelled 20480 or more
        (2**20, "0"),  # 1 MiB
        (1, "0"),  # less than a MiB rounds up to 1 MiB
        (10**9, "953"),  # 953.67 MiB rounds up to 954
        (80 * GI + 1, "81920"),  # one byte over 80Gi needs the next MiB
    ],
)
def test_the_memory_term_is_gt_the_need_in_mib_minus_one(memory_bytes: int, gt: str) -> None:
    assert memory_requirement(memory_bytes) == {
        "key": names.GPU_MEMORY_NODE_LABEL,
        "operator": "Gt",
        "values": [gt],
    }


# -- tolerations -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("existing", "added"),
    [
        ([], [GPU_TOLERATION]),
        ([GPU_TOLERATION], []),  # not duplicated
        ([{"key": "nvidia.com/gpu", "operator": "Exists"}], []),  # any effect covers
        ([{"operator": "Exists"}], []),  # tolerates everything
        (
            [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoExecute"}],
            [GPU_TOLERATION],
        ),
        ([{"key": "nvidia.com/gpu", "operator": "Equal", "value": "x"}], [GPU_TOLERATION]),
        ([{"key": "other", "operator": "Exists"}], [GPU_TOLERATION]),
    ],
)
def test_tolerations_are_added_unless_already_tolerated(
    existing: list[dict[str, Any]], added: list[dict[str, Any]]
) -> None:
    pod = gpu_pod(spec={"tolerations": copy.deepcopy(existing)} if existing else {})
    assert run(pod)["spec"]["tolerations"] == existing + added


def test_tolerates_needs_the_same_key_and_effect_without_a_time_limit() -> None:
    timed = {"operator": "Exists", "effect": "NoSchedule", "tolerationSeconds": 5}
    assert not tolerates(timed, GPU_TOLERATION)
    assert tolerates({"operator": "Exists", "key": ""}, GPU_TOLERATION)


# -- required node affinity ------------------------------------------------------------------------


def test_a_pod_without_affinity_gets_one_term() -> None:
    assert terms(run(gpu_pod(), demand=NEEDS_20GI)) == [
        {"matchExpressions": [PRESENT, memory_requirement(20 * GI)]}
    ]


def test_no_memory_term_without_a_declared_need_or_when_the_profile_turns_it_off() -> None:
    assert terms(run(gpu_pod())) == [{"matchExpressions": [PRESENT]}]
    no_memory = parse_profile("p", {"gpuMemoryAffinity": False})
    assert terms(run(gpu_pod(), no_memory, NEEDS_20GI)) == [{"matchExpressions": [PRESENT]}]


def test_the_gpu_requirement_is_anded_into_every_existing_term() -> None:
    zone = {"key": "zone", "operator": "In", "values": ["a"]}
    spot = {"key": "spot", "operator": "Exists"}
    host = {"key": "metadata.name", "operator": "In", "values": ["n1"]}
    existing = [
        {"matchExpressions": [zone]},
        {"matchExpressions": [spot, PRESENT]},
        {"matchFields": [host]},
    ]
    pod = gpu_pod(
        spec={
            "affinity": {
                "nodeAffinity": {REQUIRED[2]: {"nodeSelectorTerms": copy.deepcopy(existing)}}
            }
        }
    )
    gt = memory_requirement(20 * GI)
    assert terms(run(pod, demand=NEEDS_20GI)) == [
        {"matchExpressions": [zone, PRESENT, gt]},
        {"matchExpressions": [spot, PRESENT, gt]},  # PRESENT not repeated
        {"matchFields": [host], "matchExpressions": [PRESENT, gt]},
    ]


def test_an_empty_term_matches_no_node_and_stays_empty() -> None:
    # Adding requirements to it would make it match GPU nodes: a wider placement than asked.
    pod = gpu_pod(
        spec={
            "affinity": {
                "nodeAffinity": {REQUIRED[2]: {"nodeSelectorTerms": [{}, {"matchExpressions": []}]}}
            }
        }
    )
    assert terms(run(pod)) == [{}, {"matchExpressions": []}]


def test_other_affinity_kinds_and_the_node_selector_are_kept() -> None:
    anti = {
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 1, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname"}}
        ]
    }
    pod = gpu_pod(
        spec={"affinity": {"podAntiAffinity": anti}, "nodeSelector": {"kubernetes.io/os": "linux"}}
    )
    out = run(pod)
    assert out["spec"]["affinity"]["podAntiAffinity"] == anti
    assert out["spec"]["nodeSelector"] == {"kubernetes.io/os": "linux"}


def test_preferred_terms_are_appended_once() -> None:
    mine = {
        "weight": 10,
        "preference": {"matchExpressions": [{"key": "fast", "operator": "Exists"}]},
    }
    theirs = {
        "weight": 50,
        "preference": {
            "matchExpressions": [
                {"key": "nvidia.com/gpu.family", "operator": "In", "values": ["hopper"]}
            ]
        },
    }
    profile = parse_profile("p", {"preferredNodeAffinity": [theirs]})
    pod = gpu_pod(
        spec={
            "affinity": {
                "nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [mine]}
            }
        }
    )
    once = run(pod, profile)
    preferred = once["spec"]["affinity"]["nodeAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"
    ]
    assert preferred == [mine, theirs]
    assert run(once, profile) == once


# -- readiness gate, scheduler, stamp --------------------------------------------------------------


@pytest.mark.parametrize(
    ("gates", "expected"),
    [
        (None, [{"conditionType": names.GPU_READY_CONDITION}]),
        (
            [{"conditionType": "example.com/warm"}],
            [{"conditionType": "example.com/warm"}, {"conditionType": names.GPU_READY_CONDITION}],
        ),
        (
            [{"conditionType": names.GPU_READY_CONDITION}],
            [{"conditionType": names.GPU_READY_CONDITION}],
        ),
    ],
)
def test_the_readiness_gate_is_added_once(
    gates: list[dict[str, str]] | None, expected: list[dict[str, str]]
) -> None:
    pod = gpu_pod(spec={"readinessGates": gates} if gates else {})
    assert run(pod)["spec"]["readinessGates"] == expected


def test_no_readiness_gate_when_the_profile_turns_it_off() -> None:
    assert (
        "readinessGates" not in run(gpu_pod(), parse_profile("p", {"readinessGate": False}))["spec"]
    )


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, "headroom"),
        ("default-scheduler", "headroom"),
        ("", "headroom"),
        ("volcano", "volcano"),
        ("headroom", "headroom"),
    ],
)
def test_the_scheduler_is_set_only_over_the_default(given: str | None, expected: str) -> None:
    pod = gpu_pod(spec={"schedulerName": given} if given is not None else {})
    assert run(pod)["spec"]["schedulerName"] == expected


def test_a_null_scheduler_name_in_the_profile_leaves_the_pod_alone() -> None:
    pod = gpu_pod(spec={"schedulerName": "default-scheduler"})
    out = run(pod, parse_profile("p", {"schedulerName": None}))
    assert out["spec"]["schedulerName"] == "default-scheduler"


def test_the_stamp_records_version_profile_and_revision() -> None:
    profile = parse_profile("gpu-large", {"maxGpus": 4})
    out = run(gpu_pod(annotations={"keep": "me"}), profile)
    assert out["metadata"]["annotations"] == {
        "keep": "me",
        MUTATED_BY_ANNOTATION: f"webhook/9.9.9 profile=gpu-large rev={profile.digest}",
    }


# -- shared mode -----------------------------------------------------------------------------------


def container(
    name: str, *, gpus: bool = False, env: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    c: dict[str, Any] = {"name": name, "image": "x"}
    if gpus:
        c["resources"] = {"limits": {"nvidia.com/gpu": "1"}}
    if env is not None:
        c["env"] = env
    return c


def env_names(pod: dict[str, Any]) -> list[list[str]]:
    return [[e["name"] for e in c.get("env", [])] for c in pod["spec"]["containers"]]


def test_shared_mode_sets_visible_devices_from_the_assigned_gpus_annotation() -> None:
    out = run(gpu_pod(gpus=None), demand=SHARED)
    assert out["spec"]["containers"][0]["env"] == [visible_devices_env("NVIDIA_VISIBLE_DEVICES")]
    assert (
        out["spec"]["containers"][0]["env"][0]["valueFrom"]["fieldRef"]["fieldPath"]
        == "metadata.annotations['headroom.dev/assigned-gpus']"
    )


def test_only_containers_that_ask_for_gpus_get_it_when_any_does() -> None:
    pod = gpu_pod(
        spec={
            "containers": [
                container("a", gpus=True),
                container("sidecar"),
                container("b", gpus=True, env=[{"name": "X", "value": "1"}]),
            ]
        }
    )
    out = run(pod, demand=SHARED)
    assert env_names(out) == [["NVIDIA_VISIBLE_DEVICES"], [], ["X", "NVIDIA_VISIBLE_DEVICES"]]


def test_a_container_setting_the_variable_itself_keeps_its_value() -> None:
    own = [{"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"}]
    pod = gpu_pod(spec={"containers": [container("a"), container("b", env=copy.deepcopy(own))]})
    out = run(pod, demand=SHARED)
    assert out["spec"]["containers"][1]["env"] == own
    assert env_names(out)[0] == ["NVIDIA_VISIBLE_DEVICES"]


def test_init_containers_and_exclusive_pods_get_no_variable() -> None:
    pod = gpu_pod(spec={"initContainers": [container("init")]})
    assert "env" not in run(pod, demand=SHARED)["spec"]["initContainers"][0]
    assert "env" not in run(gpu_pod(), demand=NEEDS_20GI)["spec"]["containers"][0]


def test_the_profile_names_the_variable() -> None:
    profile = parse_profile("p", {"sharing": {"env": "CUDA_VISIBLE_UUIDS"}})
    assert env_names(run(gpu_pod(gpus=None), profile, SHARED)) == [["CUDA_VISIBLE_UUIDS"]]


# -- DRA pods --------------------------------------------------------------------------------------

DRA_NEEDS_20GI = GpuDemand(gpu_count=1, memory_bytes=20 * GI, dra=True)
DRA_SHARED = GpuDemand(gpu_count=1, memory_bytes=4 * GI, shared=True, dra=True)


@pytest.mark.parametrize("demand", [DRA_NEEDS_20GI, DRA_SHARED])
def test_a_dra_pod_gets_no_gfd_affinity_and_no_env_but_the_gate_and_scheduler(
    demand: GpuDemand,
) -> None:
    pod = gpu_pod(gpus=None, annotations={"headroom.dev/gpu-memory": "20Gi"})
    before = copy.deepcopy(pod)
    out = run(pod, demand=demand)
    assert pod == before
    spec = out["spec"]
    assert "affinity" not in spec  # neither nvidia.com/gpu.present nor nvidia.com/gpu.memory
    assert "env" not in spec["containers"][0]
    assert spec["tolerations"] == [GPU_TOLERATION]
    assert spec["readinessGates"] == [{"conditionType": names.GPU_READY_CONDITION}]
    assert spec["schedulerName"] == names.SCHEDULER_NAME
    assert MUTATED_BY_ANNOTATION in out["metadata"]["annotations"]
    assert run(out, demand=demand) == out  # idempotent


def test_a_dra_pod_keeps_its_own_affinity_and_gets_the_preferred_terms() -> None:
    theirs = {
        "weight": 50,
        "preference": {"matchExpressions": [{"key": "fast", "operator": "Exists"}]},
    }
    profile = parse_profile("p", {"preferredNodeAffinity": [theirs]})
    own = {"nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "Exists"}]}]}
    pod = gpu_pod(
        gpus=None,
        spec={
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": own}}
        },
    )
    node = run(pod, profile, DRA_NEEDS_20GI)["spec"]["affinity"]["nodeAffinity"]
    assert node["requiredDuringSchedulingIgnoredDuringExecution"] == own
    assert node["preferredDuringSchedulingIgnoredDuringExecution"] == [theirs]


# -- safety ----------------------------------------------------------------------------------------


def test_the_input_is_not_modified_and_a_second_pass_changes_nothing() -> None:
    pod = gpu_pod(
        spec={
            "tolerations": [{"key": "a", "operator": "Exists"}],
            "containers": [container("a"), container("b", gpus=True)],
        },
        annotations={"headroom.dev/gpu-memory": "4Gi"},
    )
    before = copy.deepcopy(pod)
    once = run(pod, demand=SHARED)
    assert pod == before
    assert once != pod
    assert run(once, demand=SHARED) == once


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"tolerations": "all"}, "spec.tolerations"),
        ({"tolerations": ["x"]}, "spec.tolerations[0]"),
        ({"affinity": []}, "spec.affinity"),
        (
            {"affinity": {"nodeAffinity": {REQUIRED[2]: {"nodeSelectorTerms": {}}}}},
            "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution."
            "nodeSelectorTerms",
        ),
        ({"readinessGates": [1]}, "spec.readinessGates[0]"),
        ({"containers": [{"name": "a", "env": {"A": "1"}}]}, "spec.containers[0].env"),
    ],
)
def test_a_field_of_the_wrong_type_is_named(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(MutationError) as info:
        run(gpu_pod(spec=spec), demand=SHARED)
    assert info.value.field == field
