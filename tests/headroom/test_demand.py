"""GpuDemand.from_pod: count from nvidia.com/gpu, memory and sharing from annotations."""

from typing import Any

import pytest

from headroom import names
from headroom.demand import DemandError, GpuDemand, assigned_gpus, is_managed
from headroom.dra import GpuAsk
from headroom.podclaims import PodGpus

GI = 2**30


def pod(
    annotations: dict[str, str] | None = None,
    gpus: list[object] | None = None,
    init_gpus: list[object] | None = None,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    def container(i: int, n: object) -> dict[str, Any]:
        limits = {} if n is None else {names.GPU_RESOURCE: n}
        return {"name": f"c{i}", "image": "x", "resources": {"limits": limits}}

    return {
        "metadata": {"name": "p", "annotations": annotations or {}, "labels": labels or {}},
        "spec": {
            "containers": [container(i, n) for i, n in enumerate(gpus or [None])],
            "initContainers": [container(i, n) for i, n in enumerate(init_gpus or [])],
        },
    }


def test_a_pod_without_gpus_has_no_demand() -> None:
    assert GpuDemand.from_pod(pod()) is None
    assert GpuDemand.from_pod({}) is None


def test_count_from_the_limit_without_memory_is_exclusive_whole_gpus() -> None:
    assert GpuDemand.from_pod(pod(gpus=["2"])) == GpuDemand(gpu_count=2)


def test_memory_annotation_alone_means_one_gpu() -> None:
    demand = GpuDemand.from_pod(pod({names.GPU_MEMORY_ANNOTATION: "20Gi"}))
    assert demand == GpuDemand(gpu_count=1, memory_bytes=20 * GI, shared=False)
    assert demand.describe() == "20Gi on 1 GPU"


def test_count_sums_app_containers_and_takes_the_largest_init_container() -> None:
    assert GpuDemand.from_pod(pod(gpus=[1, "2", None])) == GpuDemand(gpu_count=3)
    assert GpuDemand.from_pod(pod(gpus=[1], init_gpus=[4, 2])) == GpuDemand(gpu_count=4)


def sidecar(gpus: int, name: str = "sidecar") -> dict[str, Any]:
    return {
        "name": name,
        "image": "x",
        "restartPolicy": "Always",
        "resources": {"limits": {names.GPU_RESOURCE: str(gpus)}},
    }


def test_a_native_sidecar_adds_to_the_app_containers() -> None:
    # An 8-GPU server with a 1-GPU sidecar takes 9 GPUs, as the scheduler counts it.
    p = pod(gpus=[8])
    p["spec"]["initContainers"] = [sidecar(1)]
    assert GpuDemand.from_pod(p) == GpuDemand(gpu_count=9)


def test_an_init_container_counts_with_the_sidecars_started_before_it() -> None:
    p = pod(gpus=[1])
    ordinary = {"name": "load", "image": "x", "resources": {"limits": {names.GPU_RESOURCE: "4"}}}
    p["spec"]["initContainers"] = [sidecar(2, "first"), ordinary, sidecar(1, "last")]
    # "load" runs beside "first": 2 + 4 = 6; afterwards the app with both sidecars: 1 + 3 = 4.
    assert GpuDemand.from_pod(p) == GpuDemand(gpu_count=6)
    p["spec"]["initContainers"] = [ordinary, sidecar(2, "first")]
    assert GpuDemand.from_pod(p) == GpuDemand(gpu_count=4)  # max(4, 1 + 2)


def test_an_init_container_restart_policy_other_than_always_is_ordinary() -> None:
    p = pod(gpus=[1])
    p["spec"]["initContainers"] = [{**sidecar(2), "restartPolicy": "Never"}]
    assert GpuDemand.from_pod(p) == GpuDemand(gpu_count=2)


def test_requests_count_when_no_limit_is_given() -> None:
    p = pod()
    p["spec"]["containers"][0]["resources"] = {"requests": {names.GPU_RESOURCE: "1"}}
    assert GpuDemand.from_pod(p) == GpuDemand(gpu_count=1)


def test_shared_mode() -> None:
    demand = GpuDemand.from_pod(
        pod({names.GPU_MEMORY_ANNOTATION: "10Gi", names.GPU_SHARING_ANNOTATION: "true"}, gpus=[2])
    )
    assert demand == GpuDemand(gpu_count=2, memory_bytes=10 * GI, shared=True)
    assert demand.total_bytes == 20 * GI
    assert demand.describe() == "10Gi on 2 GPUs"


@pytest.mark.parametrize(
    ("annotations", "gpus", "field", "expected_words"),
    [
        ({names.GPU_MEMORY_ANNOTATION: "lots"}, None, names.GPU_MEMORY_ANNOTATION, '"20Gi"'),
        ({names.GPU_MEMORY_ANNOTATION: "-2Gi"}, None, names.GPU_MEMORY_ANNOTATION, "negative"),
        ({names.GPU_MEMORY_ANNOTATION: "0"}, None, names.GPU_MEMORY_ANNOTATION, "more than 0"),
        ({names.GPU_MEMORY_ANNOTATION: "1.5"}, None, names.GPU_MEMORY_ANNOTATION, "whole"),
        (
            {names.GPU_SHARING_ANNOTATION: "yes", names.GPU_MEMORY_ANNOTATION: "1Gi"},
            None,
            names.GPU_SHARING_ANNOTATION,
            '"true" or "false"',
        ),
        ({names.GPU_SHARING_ANNOTATION: "true"}, None, names.GPU_MEMORY_ANNOTATION, "is required"),
        ({}, ["1.5"], "spec.containers[0].resources.limits[nvidia.com/gpu]", "whole number"),
        ({}, ["two"], "spec.containers[0].resources.limits[nvidia.com/gpu]", "whole number"),
        ({}, ["-1"], "spec.containers[0].resources.limits[nvidia.com/gpu]", "whole number"),
    ],
)
def test_errors_name_the_field(
    annotations: dict[str, str], gpus: list[object] | None, field: str, expected_words: str
) -> None:
    with pytest.raises(DemandError) as info:
        GpuDemand.from_pod(pod(annotations, gpus=gpus))
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    assert expected_words in str(info.value)


def test_managed_label_and_assigned_gpus() -> None:
    assert is_managed(pod(labels={names.MANAGED_LABEL: "true"}))
    assert not is_managed(pod(labels={names.MANAGED_LABEL: "yes"}))
    assert not is_managed({})
    p = pod({names.ASSIGNED_GPUS_ANNOTATION: "GPU-a, GPU-b,,"})
    assert assigned_gpus(p) == ("GPU-a", "GPU-b")
    assert assigned_gpus(pod()) == ()


@pytest.mark.parametrize(
    ("malformed", "field"),
    [
        ({"spec": 5}, "spec"),
        ({"metadata": []}, "metadata"),
        ({"metadata": {"annotations": "x"}}, "metadata.annotations"),
        ({"spec": {"containers": [{"resources": 5}]}}, "spec.containers[0].resources"),
        (
            {"spec": {"containers": [{"resources": {"limits": 5}}]}},
            "spec.containers[0].resources.limits",
        ),
    ],
)
def test_a_malformed_pod_is_an_error_naming_the_field(
    malformed: dict[str, Any], field: str
) -> None:
    with pytest.raises(DemandError) as info:
        GpuDemand.from_pod(malformed)
    assert info.value.field == field
    assert not is_managed(malformed)
    assert assigned_gpus(malformed) == ()


# -- GPUs from ResourceClaims --------------------------------------------------------------------
def claims(count: int = 0, *, all_devices: bool = False, memory_gi: int = 0) -> PodGpus:
    return PodGpus(GpuAsk(count, all_devices, memory_gi * GI))


def test_claims_give_the_count_and_mark_the_demand_dra() -> None:
    demand = GpuDemand.from_pod(pod(), claims=claims(2))
    assert demand == GpuDemand(gpu_count=2, dra=True)
    assert demand.describe() == "2 free GPUs"


def test_a_memory_capacity_request_is_a_shared_demand() -> None:
    demand = GpuDemand.from_pod(pod(), claims=claims(1, memory_gi=20))
    assert demand == GpuDemand(gpu_count=1, memory_bytes=20 * GI, shared=True, dra=True)


@pytest.mark.parametrize(
    ("annotation", "claimed_gi", "memory_gi"),
    [("30Gi", 20, 30), ("10Gi", 20, 20), ("10Gi", 0, 10)],
)
def test_the_need_is_the_larger_of_the_annotation_and_the_claims_request(
    annotation: str, claimed_gi: int, memory_gi: int
) -> None:
    demand = GpuDemand.from_pod(
        pod({names.GPU_MEMORY_ANNOTATION: annotation}), claims=claims(1, memory_gi=claimed_gi)
    )
    assert demand is not None
    assert demand.memory_bytes == memory_gi * GI
    assert demand.shared == (claimed_gi > 0)  # sharing comes from the claim alone


def test_device_plugin_gpus_and_claimed_gpus_add_up() -> None:
    demand = GpuDemand.from_pod(pod(gpus=[1, 2]), claims=claims(2))
    assert demand == GpuDemand(gpu_count=5, dra=True)


def test_all_devices_asks_every_gpu_of_the_node() -> None:
    demand = GpuDemand.from_pod(
        pod({names.GPU_MEMORY_ANNOTATION: "40Gi"}), claims=claims(all_devices=True)
    )
    assert demand == GpuDemand(gpu_count=0, memory_bytes=40 * GI, dra=True, all_gpus=True)
    assert demand.describe() == "40Gi on every GPU of the node"
    assert GpuDemand(0, all_gpus=True).describe() == "every GPU of the node"


def test_claims_of_no_gpu_leave_the_device_plugin_reading() -> None:
    assert GpuDemand.from_pod(pod(), claims=PodGpus()) is None
    assert GpuDemand.from_pod(pod(gpus=[1]), claims=PodGpus()) == GpuDemand(1)


def test_the_sharing_annotation_on_a_dra_pod_is_refused() -> None:
    shared = pod({names.GPU_SHARING_ANNOTATION: "true", names.GPU_MEMORY_ANNOTATION: "10Gi"})
    with pytest.raises(DemandError) as info:
        GpuDemand.from_pod(shared, claims=claims(1))
    assert info.value.field == names.GPU_SHARING_ANNOTATION
    assert "capacity.requests.memory" in info.value.message
    not_shared = pod({names.GPU_SHARING_ANNOTATION: "false"})
    assert GpuDemand.from_pod(not_shared, claims=claims(1)) == GpuDemand(1, dra=True)


def test_a_bad_memory_annotation_on_a_dra_pod_is_named() -> None:
    with pytest.raises(DemandError) as info:
        GpuDemand.from_pod(pod({names.GPU_MEMORY_ANNOTATION: "lots"}), claims=claims(1))
    assert info.value.field == names.GPU_MEMORY_ANNOTATION
