"""A test DRA driver: it publishes the simulated nodes' GPUs as ResourceSlices, the way NVIDIA's
driver does (one device per GPU, a `uuid` and `productName` attribute, the total `memory` as
capacity), and the DeviceClass that selects them. No kubelet plugin runs: the kube-scheduler's
DynamicResources plugin allocates from these slices; nothing prepares the devices on a node."""

from __future__ import annotations

from collections.abc import Sequence
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


def resource_slice(
    node_name: str,
    gpus: Sequence[tuple[str, int]],
    *,
    driver: str = NVIDIA_GPU_DRIVER,
    product: str = "NVIDIA A100-SXM4-80GB",
    generation: int = 1,
) -> dict[str, Any]:
    """The slice publishing `gpus` ((uuid, total bytes) each, as `gpu-0`, `gpu-1`, ...) on a node,
    in a pool named after the node, as a node-local driver does."""
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "ResourceSlice",
        "metadata": {"name": f"{node_name}-{driver}"},
        "spec": {
            "driver": driver,
            "nodeName": node_name,
            "pool": {"name": node_name, "generation": generation, "resourceSliceCount": 1},
            "devices": [
                {
                    "name": f"gpu-{index}",
                    "attributes": {
                        "uuid": {"string": uuid},
                        "productName": {"string": product},
                    },
                    "capacity": {"memory": {"value": str(total_bytes)}},
                }
                for index, (uuid, total_bytes) in enumerate(gpus)
            ],
        },
    }


def claim_template(
    name: str, *, count: int = 1, device_class_name: str = NVIDIA_GPU_DRIVER
) -> dict[str, Any]:
    """A ResourceClaimTemplate asking for `count` GPUs of the class, as a chart's pod would."""
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "ResourceClaimTemplate",
        "metadata": {"name": name},
        "spec": {
            "spec": {
                "devices": {
                    "requests": [
                        {
                            "name": "gpu",
                            "exactly": {
                                "deviceClassName": device_class_name,
                                "allocationMode": "ExactCount",
                                "count": count,
                            },
                        }
                    ]
                }
            }
        },
    }
