"""A test DRA driver: it publishes the simulated nodes' GPUs as ResourceSlices, the way NVIDIA's
driver does (one device per GPU, a `uuid` and `productName` attribute, the total `memory` as
capacity, optionally device taints and consumable memory for shared GPUs), the DeviceClass that
selects them, claim templates and DeviceTaintRules. No kubelet plugin runs: the kube-scheduler's
DynamicResources plugin allocates from these slices; nothing prepares the devices on a node."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from headroom.dra import GROUP_VERSION, NVIDIA_GPU_DRIVER

GIB = 2**30


def device_class(
    name: str = NVIDIA_GPU_DRIVER, *, driver: str = NVIDIA_GPU_DRIVER
) -> dict[str, Any]:
    """The DeviceClass NVIDIA's driver installs: every device of that driver."""
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "DeviceClass",
        "metadata": {"name": name},
        "spec": {"selectors": [{"cel": {"expression": f"device.driver == '{driver}'"}}]},
    }


Taint = tuple[str, str, str]  # (key, value, effect) of a device taint


def resource_slice(
    node_name: str,
    gpus: Sequence[tuple[str, int]],
    *,
    driver: str = NVIDIA_GPU_DRIVER,
    product: str = "NVIDIA A100-SXM4-80GB",
    generation: int = 1,
    taints: Mapping[int, Sequence[Taint]] | None = None,
    shared: bool = False,
    memory_step: int = GIB,
) -> dict[str, Any]:
    """The slice publishing `gpus` ((uuid, total bytes) each, as `gpu-0`, `gpu-1`, ...) on a node,
    in a pool named after the node, as a node-local driver does.

    `taints` gives devices (by index) taints as (key, value, effect). `shared` publishes each GPU
    for several allocations (`allowMultipleAllocations`) with its `memory` consumable: a claim
    asks for part of it (`capacity.requests.memory`, rounded up to `memory_step`), by default
    one step."""
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "ResourceSlice",
        "metadata": {"name": f"{node_name}-{driver}"},
        "spec": {
            "driver": driver,
            "nodeName": node_name,
            "pool": {"name": node_name, "generation": generation, "resourceSliceCount": 1},
            "devices": [
                _device(
                    index,
                    uuid,
                    total_bytes,
                    product=product,
                    taints=(taints or {}).get(index, ()),
                    shared=shared,
                    memory_step=memory_step,
                )
                for index, (uuid, total_bytes) in enumerate(gpus)
            ],
        },
    }


def _device(
    index: int,
    uuid: str,
    total_bytes: int,
    *,
    product: str,
    taints: Sequence[Taint],
    shared: bool,
    memory_step: int,
) -> dict[str, Any]:
    memory: dict[str, Any] = {"value": str(total_bytes)}
    device: dict[str, Any] = {
        "name": f"gpu-{index}",
        "attributes": {"uuid": {"string": uuid}, "productName": {"string": product}},
        "capacity": {"memory": memory},
    }
    if shared:
        device["allowMultipleAllocations"] = True
        if total_bytes >= 2 * memory_step:  # the API wants min + step <= value, max a multiple
            top = total_bytes // memory_step * memory_step
            memory["requestPolicy"] = {
                "default": str(memory_step),
                "validRange": {"min": str(memory_step), "max": str(top), "step": str(memory_step)},
            }
    if taints:
        device["taints"] = [{"key": k, "value": v, "effect": e} for k, v, e in taints]
    return device


def claim_template(
    name: str,
    *,
    count: int = 1,
    device_class_name: str = NVIDIA_GPU_DRIVER,
    memory: int | None = None,
) -> dict[str, Any]:
    """A ResourceClaimTemplate asking for `count` GPUs of the class, as a chart's pod would;
    with `memory`, that many bytes of each (`capacity.requests.memory`) on a shared GPU."""
    exactly: dict[str, Any] = {
        "deviceClassName": device_class_name,
        "allocationMode": "ExactCount",
        "count": count,
    }
    if memory is not None:
        exactly["capacity"] = {"requests": {"memory": str(memory)}}
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "ResourceClaimTemplate",
        "metadata": {"name": name},
        "spec": {"spec": {"devices": {"requests": [{"name": "gpu", "exactly": exactly}]}}},
    }


def device_taint_rule(
    name: str,
    *,
    driver: str | None = NVIDIA_GPU_DRIVER,
    pool: str | None = None,
    device: str | None = None,
    key: str = "headroom.dev/maintenance",
    value: str = "",
    effect: str = "NoSchedule",
) -> dict[str, Any]:
    """A DeviceTaintRule tainting the devices its selector picks (the fields given; `None` leaves
    one out), as an administrator draining a GPU would write it."""
    wanted = {"driver": driver, "pool": pool, "device": device}
    taint = {"key": key, "effect": effect} | ({"value": value} if value else {})
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "DeviceTaintRule",
        "metadata": {"name": name},
        "spec": {
            "deviceSelector": {k: v for k, v in wanted.items() if v is not None},
            "taint": taint,
        },
    }
