"""The test DRA driver's objects: the resource.k8s.io/v1 shape the API server takes, read back by
`headroom.dra` as the extender reads a real driver's."""

from __future__ import annotations

from headroom.dra import GpuAsk, requested_gpus, rule_taint, slice_devices, tainted_gpus
from tooling.dra import GIB, claim_template, device_taint_rule, resource_slice


def test_a_plain_slice_neither_shares_nor_taints() -> None:
    device = resource_slice("n", [("GPU-0", 80 * GIB)])["spec"]["devices"][0]
    assert "allowMultipleAllocations" not in device and "taints" not in device
    assert device["capacity"] == {"memory": {"value": str(80 * GIB)}}


def test_a_shared_slice_lets_claims_consume_memory_in_steps() -> None:
    spec = resource_slice("n", [("GPU-0", 80 * GIB), ("GPU-1", GIB)], shared=True)["spec"]
    big, small = spec["devices"]
    assert big["allowMultipleAllocations"] is True
    assert big["capacity"]["memory"] == {
        "value": str(80 * GIB),
        "requestPolicy": {
            "default": str(GIB),
            "validRange": {"min": str(GIB), "max": str(80 * GIB), "step": str(GIB)},
        },
    }
    # Too small for a range of steps (min + step must fit): shared without a policy.
    assert small["allowMultipleAllocations"] is True
    assert "requestPolicy" not in small["capacity"]["memory"]
    assert [d.memory_bytes for d in slice_devices({"spec": spec})] == [80 * GIB, GIB]


def test_the_range_tops_out_at_a_whole_step() -> None:
    odd = 40 * GIB + 12345
    device = resource_slice("n", [("GPU-0", odd)], shared=True)["spec"]["devices"][0]
    assert device["capacity"]["memory"]["value"] == str(odd)
    assert device["capacity"]["memory"]["requestPolicy"]["validRange"]["max"] == str(40 * GIB)


def test_device_taints_go_on_the_devices_named() -> None:
    spec = resource_slice(
        "n", [("GPU-0", GIB), ("GPU-1", GIB)], taints={1: [("fault", "xid-79", "NoExecute")]}
    )["spec"]
    assert "taints" not in spec["devices"][0]
    assert spec["devices"][1]["taints"] == [
        {"key": "fault", "value": "xid-79", "effect": "NoExecute"}
    ]
    assert tainted_gpus(slice_devices({"spec": spec})) == {"GPU-1": "fault=xid-79:NoExecute"}


def test_a_template_may_ask_for_part_of_each_gpus_memory() -> None:
    template = claim_template("half", count=2, memory=40 * GIB)
    exactly = template["spec"]["spec"]["devices"]["requests"][0]["exactly"]
    assert exactly["capacity"] == {"requests": {"memory": str(40 * GIB)}}
    assert requested_gpus(template["spec"]["spec"]) == GpuAsk(2, memory_bytes=40 * GIB)
    assert (
        "capacity"
        not in claim_template("whole")["spec"]["spec"]["devices"]["requests"][0]["exactly"]
    )


def test_a_device_taint_rule_selects_by_the_fields_given() -> None:
    rule = device_taint_rule(
        "drain-gpu-1", pool="node-a", device="gpu-1", key="drain", value="now", effect="NoExecute"
    )
    assert rule["apiVersion"] == "resource.k8s.io/v1"
    assert rule["kind"] == "DeviceTaintRule"
    assert rule["spec"] == {
        "deviceSelector": {"driver": "gpu.nvidia.com", "pool": "node-a", "device": "gpu-1"},
        "taint": {"key": "drain", "value": "now", "effect": "NoExecute"},
    }
    assert rule_taint(rule) == (rule["spec"]["deviceSelector"], "drain=now:NoExecute")
    assert device_taint_rule("all", driver=None)["spec"]["deviceSelector"] == {}
