"""DRA in the contract: the devices a ResourceSlice publishes, the GPUs an allocated claim holds,
and the GPU devices a claim asks for; bad input is a FieldError naming the field, never a crash."""

from __future__ import annotations

import contextlib
import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from headroom.dra import (
    GpuAsk,
    SliceDevice,
    allocated_gpus,
    device_index,
    requested_gpus,
    reserved_pods,
    rule_selects,
    rule_taint,
    slice_devices,
    tainted_gpus,
)
from headroom.fields import FieldError
from tooling.dra import GIB, claim_template, device_taint_rule, resource_slice

SLICE = resource_slice("node-a", [("GPU-a0", 80 * GIB), ("GPU-a1", 40 * GIB)])
SLICE_B = resource_slice("node-b", [("GPU-b0", 80 * GIB), ("GPU-b1", 80 * GIB)])
TAINTED = resource_slice(
    "node-a",
    [("GPU-a0", 80 * GIB), ("GPU-a1", 80 * GIB), ("GPU-a2", 80 * GIB)],
    taints={0: [("fault", "ecc", "NoExecute"), ("note", "", "None")], 1: [("note", "x", "None")]},
)


def allocated(*results: tuple[str, str, str]) -> dict[str, Any]:
    return {
        "spec": {},
        "status": {
            "allocation": {
                "devices": {
                    "results": [
                        {"request": "gpu", "driver": d, "pool": p, "device": n}
                        for d, p, n in results
                    ]
                }
            }
        },
    }


def test_a_slice_gives_each_gpu_its_uuid_node_and_total_memory() -> None:
    assert slice_devices(SLICE) == [
        SliceDevice("gpu.nvidia.com", "node-a", "gpu-0", "node-a", "GPU-a0", 80 * GIB),
        SliceDevice("gpu.nvidia.com", "node-a", "gpu-1", "node-a", "GPU-a1", 40 * GIB),
    ]


def test_attributes_and_capacities_may_be_qualified_with_the_drivers_domain() -> None:
    qualified = copy.deepcopy(SLICE)
    device = qualified["spec"]["devices"][0]
    device["attributes"] = {"gpu.nvidia.com/uuid": {"string": "GPU-q"}}
    device["capacity"] = {"gpu.nvidia.com/memory": {"value": "24Gi"}}
    first = slice_devices(qualified)[0]
    assert (first.uuid, first.memory_bytes) == ("GPU-q", 24 * GIB)


def test_an_allocated_claim_names_the_gpus_it_holds() -> None:
    index = device_index([SLICE, resource_slice("node-b", [("GPU-b0", 80 * GIB)])])
    claim = allocated(("gpu.nvidia.com", "node-b", "gpu-0"), ("gpu.nvidia.com", "node-a", "gpu-1"))
    held = [(g.device.node_name, g.device.uuid) for g in allocated_gpus(claim, index)]
    assert held == [("node-b", "GPU-b0"), ("node-a", "GPU-a1")]


def test_other_drivers_unpublished_devices_and_unallocated_claims_hold_no_gpu() -> None:
    index = device_index([SLICE])
    assert allocated_gpus({"spec": {}}, index) == []
    assert allocated_gpus(allocated(("nic.example.com", "node-a", "gpu-0")), index) == []
    assert allocated_gpus(allocated(("gpu.nvidia.com", "node-a", "gpu-9")), index) == []
    other = allocated(("tpu.example.com", "node-a", "gpu-0"))
    assert allocated_gpus(other, index, gpu_drivers=["tpu.example.com"]) == []  # not in index


def test_a_bad_slice_is_skipped_in_the_index_and_named_when_read_alone() -> None:
    bad = copy.deepcopy(SLICE)
    bad["spec"]["devices"][1]["capacity"]["memory"]["value"] = "lots"
    assert device_index([bad, resource_slice("node-b", [("GPU-b0", GIB)])]).keys() == {
        ("gpu.nvidia.com", "node-b", "gpu-0")
    }
    with pytest.raises(FieldError) as info:
        slice_devices(bad)
    assert info.value.field == "spec.devices[1].capacity.memory.value"


@pytest.mark.parametrize(
    ("requests", "ask"),
    [
        ([{"name": "g", "exactly": {"deviceClassName": "gpu.nvidia.com"}}], GpuAsk(1)),
        ([{"name": "g", "exactly": {"deviceClassName": "gpu.nvidia.com", "count": 4}}], GpuAsk(4)),
        (
            [
                {
                    "name": "g",
                    "exactly": {"deviceClassName": "gpu.nvidia.com", "allocationMode": "All"},
                }
            ],
            GpuAsk(0, all_devices=True),
        ),
        ([{"name": "n", "exactly": {"deviceClassName": "nic.example.com", "count": 2}}], GpuAsk(0)),
        (
            [
                {
                    "name": "g",
                    "firstAvailable": [
                        {"name": "big", "deviceClassName": "gpu.nvidia.com", "count": 2},
                        {"name": "small", "deviceClassName": "gpu.nvidia.com"},
                    ],
                }
            ],
            GpuAsk(2),
        ),
    ],
)
def test_what_a_claim_asks_of_the_gpu_classes(requests: list[Any], ask: GpuAsk) -> None:
    assert requested_gpus({"devices": {"requests": requests}}) == ask


def test_a_template_asks_through_its_inner_spec() -> None:
    template = claim_template("two", count=2)
    assert requested_gpus(template["spec"]["spec"]) == GpuAsk(2)


@pytest.mark.parametrize(
    ("exactly", "field"),
    [
        (
            {"deviceClassName": "gpu.nvidia.com", "count": 0},
            "spec.devices.requests[0].exactly.count",
        ),
        (
            {"deviceClassName": "gpu.nvidia.com", "count": True},
            "spec.devices.requests[0].exactly.count",
        ),
        (
            {"deviceClassName": "gpu.nvidia.com", "allocationMode": "Some"},
            "spec.devices.requests[0].exactly.allocationMode",
        ),
        ({"deviceClassName": 7}, "spec.devices.requests[0].exactly.deviceClassName"),
    ],
)
def test_a_request_that_is_not_the_apis_shape_is_named(exactly: Any, field: str) -> None:
    with pytest.raises(FieldError) as info:
        requested_gpus({"devices": {"requests": [{"name": "g", "exactly": exactly}]}})
    assert info.value.field == field


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)


def _replace_somewhere(doc: Any, value: Any, path: list[int]) -> Any:
    """`doc` with one node (chosen by `path`) replaced by `value`."""
    if not path or not isinstance(doc, dict | list) or not doc:
        return value
    keys = list(doc) if isinstance(doc, dict) else list(range(len(doc)))
    key = keys[path[0] % len(keys)]
    out = copy.copy(doc)
    out[key] = _replace_somewhere(doc[key], value, path[1:])
    return out


@given(JSON, st.lists(st.integers(min_value=0), max_size=8))
def test_any_wrong_value_at_any_depth_reads_or_is_a_field_error(
    value: Any, path: list[int]
) -> None:
    index = device_index([SLICE])
    for doc, read in (
        (SLICE, slice_devices),
        (allocated(("gpu.nvidia.com", "node-a", "gpu-0")), lambda d: allocated_gpus(d, index)),
        (claim_template("t")["spec"]["spec"], requested_gpus),
        (claim_template("t", memory=GIB)["spec"]["spec"], requested_gpus),
        (TAINTED, slice_devices),
        (device_taint_rule("r", pool="node-a"), lambda d: tainted_gpus(index.values(), [d])),
    ):
        broken = _replace_somewhere(doc, value, path)
        if not isinstance(broken, dict):
            continue
        with contextlib.suppress(FieldError):  # a FieldError is the one allowed failure
            read(broken)


# -- consumable memory, GpuAsk -------------------------------------------------------------------
def test_a_memory_capacity_request_makes_the_ask_a_share_of_a_gpu() -> None:
    spec = claim_template("share", count=2, memory=20 * GIB)["spec"]["spec"]
    assert requested_gpus(spec) == GpuAsk(2, memory_bytes=20 * GIB)
    qualified = copy.deepcopy(spec)
    qualified["devices"]["requests"][0]["exactly"]["capacity"]["requests"] = {
        "gpu.nvidia.com/memory": "10Gi"
    }
    assert requested_gpus(qualified).memory_bytes == 10 * GIB
    assert requested_gpus(qualified).shared


def test_a_bad_memory_request_is_named() -> None:
    spec = claim_template("share", memory=GIB)["spec"]["spec"]
    spec["devices"]["requests"][0]["exactly"]["capacity"]["requests"]["memory"] = "much"
    with pytest.raises(FieldError) as info:
        requested_gpus(spec)
    assert info.value.field == "spec.devices.requests[0].exactly.capacity.requests.memory"


def test_asks_add_up_counts_keep_all_and_take_the_larger_memory() -> None:
    one, every = GpuAsk(1, memory_bytes=8 * GIB), GpuAsk(0, all_devices=True)
    assert one.plus(GpuAsk(2, memory_bytes=4 * GIB)) == GpuAsk(3, memory_bytes=8 * GIB)
    assert one.plus(every) == GpuAsk(1, all_devices=True, memory_bytes=8 * GIB)
    assert (GpuAsk().any, GpuAsk(1).any, every.any) == (False, True, True)
    assert (GpuAsk(1).shared, one.shared) == (False, True)


@given(
    st.lists(
        st.builds(
            GpuAsk,
            st.integers(0, 8),
            st.booleans(),
            st.integers(0, 100 * GIB),
        ),
        max_size=5,
    )
)
def test_adding_asks_is_order_free(asks: list[GpuAsk]) -> None:
    forward, backward = GpuAsk(), GpuAsk()
    for ask in asks:
        forward = forward.plus(ask)
    for ask in reversed(asks):
        backward = backward.plus(ask)
    assert forward == backward
    assert forward.count == sum(a.count for a in asks)


# -- device taints -------------------------------------------------------------------------------
def test_a_slice_keeps_its_devices_blocking_taints_only() -> None:
    taints = [d.taints for d in slice_devices(TAINTED)]
    assert taints == [("fault=ecc:NoExecute",), (), ()]


def test_gpus_tainted_by_their_slice_or_a_rule() -> None:
    devices = list(device_index([TAINTED, SLICE_B]).values())
    rule = device_taint_rule("drain", pool="node-b", device="gpu-0", key="drain")
    assert tainted_gpus(devices) == {"GPU-a0": "fault=ecc:NoExecute"}
    assert tainted_gpus(devices, [rule]) == {
        "GPU-a0": "fault=ecc:NoExecute",
        "GPU-b0": "drain=:NoSchedule",
    }


def test_a_rules_selector_matches_every_field_it_sets() -> None:
    devices = list(device_index([SLICE_B]).values())

    def picked(rule: dict[str, Any]) -> set[str]:
        return set(tainted_gpus(devices, [rule]))

    assert picked(device_taint_rule("all", driver=None)) == {"GPU-b0", "GPU-b1"}  # empty: all
    assert picked(device_taint_rule("pool", pool="node-b")) == {"GPU-b0", "GPU-b1"}
    assert picked(device_taint_rule("one", device="gpu-1")) == {"GPU-b1"}
    assert picked(device_taint_rule("other", driver="tpu.example.com")) == set()
    assert picked(device_taint_rule("elsewhere", pool="node-a", device="gpu-1")) == set()


def test_a_rule_without_selector_or_blocking_effect_taints_nothing() -> None:
    devices = list(device_index([SLICE_B]).values())
    no_selector = device_taint_rule("none")
    del no_selector["spec"]["deviceSelector"]
    informational = device_taint_rule("info", effect="None")
    unknown = device_taint_rule("future", effect="NoExecuteWithPodDisruptionBudget")
    assert rule_taint(no_selector) is None and rule_taint(informational) is None
    assert tainted_gpus(devices, [no_selector, informational, unknown]) == {}
    assert rule_taint(device_taint_rule("r", device="gpu-0", key="k", value="v")) == (
        {"driver": "gpu.nvidia.com", "device": "gpu-0"},
        "k=v:NoSchedule",
    )


def test_a_rule_that_does_not_read_is_ignored_and_devices_without_uuid_are_not_named() -> None:
    devices = [SliceDevice("gpu.nvidia.com", "node-b", "gpu-9", "node-b", None, None)]
    rules = [{"spec": "broken"}, device_taint_rule("all", driver=None)]
    assert tainted_gpus(devices, rules) == {}
    named = [*devices, *device_index([SLICE_B]).values()]
    assert set(tainted_gpus(named, rules)) == {"GPU-b0", "GPU-b1"}
    assert rule_selects({}, devices[0])
    assert not rule_selects({"pool": "node-a"}, devices[0])


def test_reserved_pods_are_the_pod_entries_of_reserved_for() -> None:
    claim = {
        "status": {
            "reservedFor": [
                {"resource": "pods", "name": "a", "uid": "uid-a"},
                {"resource": "jobs", "apiGroup": "batch", "name": "j", "uid": "uid-j"},
                {"resource": "pods", "name": "b", "uid": "uid-b"},
                {"resource": "pods", "name": "c"},
            ]
        }
    }
    assert reserved_pods(claim) == ("uid-a", "uid-b")
    assert reserved_pods({}) == () == reserved_pods({"status": {"reservedFor": "x"}})
