"""Which DeviceTaintRules the agent wants (pure): the rule for each unhealthy GPU's device on this
node and of a GPU driver, the short reason as the taint's value, and names and labels that the API
accepts whatever the node is called."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from headroom.dra import slice_devices, tainted_gpus
from headroom.report import GpuState, NodeReport
from nodeagent import taints
from tooling.dra import resource_slice

GIB = 2**30
NODE = "gpu-a"
UUIDS = ["GPU-0000", "GPU-1111", "GPU-2222"]
LOST = "GPU is lost (nvmlDeviceGetHandleByIndex)"
XID = "critical XID 79 (GPU has fallen off the bus) at 2026-01-01T00:00:00Z; unhealthy until ..."
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


def gpu(index: int, reason: str = "") -> GpuState:
    return GpuState(
        index=index,
        uuid=UUIDS[index],
        model="A100",
        total_bytes=80 * GIB,
        used_bytes=0,
        healthy=not reason,
        reason=reason,
    )


def report(*gpus: GpuState, healthy: bool = True) -> NodeReport:
    return NodeReport(
        node_name=NODE,
        reported_at_unix_seconds=0.0,
        gpus=gpus,
        healthy=healthy,
        reason="" if healthy else "NVIDIA driver not loaded",
    )


def test_each_unhealthy_gpu_gets_a_rule_for_the_device_publishing_it() -> None:
    wanted = taints.wanted_taints(
        report(gpu(0), gpu(1, LOST), gpu(2, XID)),
        slice_devices(resource_slice(NODE, [(u, 80 * GIB) for u in UUIDS])),
        node=NODE,
        drivers=["gpu.nvidia.com"],
    )
    assert {n: (w.device.name, w.gpu_uuid, w.value) for n, w in wanted.items()} == {
        "headroom-gpu-a-gpu-1": ("gpu-1", UUIDS[1], "lost"),
        "headroom-gpu-a-gpu-2": ("gpu-2", UUIDS[2], "xid-79"),
    }
    rule = taints.rule_object(wanted["headroom-gpu-a-gpu-1"], node=NODE, effect="NoSchedule")
    assert rule["metadata"]["labels"] == {
        "headroom.dev/node": NODE,
        "app.kubernetes.io/managed-by": "headroom-nodeagent",
    }
    assert rule["spec"] == {
        "deviceSelector": {"driver": "gpu.nvidia.com", "pool": NODE, "device": "gpu-1"},
        "taint": {"key": "headroom.dev/gpu-unhealthy", "value": "lost", "effect": "NoSchedule"},
    }
    # What the extender reads back from the rule: that GPU, and only it, is tainted.
    all_devices = slice_devices(resource_slice(NODE, [(u, 80 * GIB) for u in UUIDS]))
    assert tainted_gpus(all_devices, [rule]) == {
        UUIDS[1]: "headroom.dev/gpu-unhealthy=lost:NoSchedule"
    }


def test_only_this_nodes_devices_of_the_gpu_drivers_with_a_matching_uuid_count() -> None:
    unhealthy = report(gpu(0, LOST), gpu(1, LOST), gpu(2, LOST))
    other_node = slice_devices(resource_slice("gpu-b", [(u, 80 * GIB) for u in UUIDS]))
    other_driver = slice_devices(
        resource_slice(NODE, [(u, 80 * GIB) for u in UUIDS], driver="other.example.com")
    )
    no_match = slice_devices(resource_slice(NODE, [("GPU-elsewhere", 80 * GIB)]))
    no_uuid = [replace(d, uuid=None) for d in slice_devices(resource_slice(NODE, [(UUIDS[0], 1)]))]
    for devs in (other_node, other_driver, no_match, no_uuid):
        assert taints.wanted_taints(unhealthy, devs, node=NODE, drivers=["gpu.nvidia.com"]) == {}
    # The other driver counts once it is named.
    wanted = taints.wanted_taints(
        unhealthy, other_driver, node=NODE, drivers=["gpu.nvidia.com", "other.example.com"]
    )
    assert len(wanted) == 3
    # A healthy report wants nothing.
    healthy = slice_devices(resource_slice(NODE, [(u, 80 * GIB) for u in UUIDS]))
    assert (
        taints.wanted_taints(report(gpu(0), gpu(1)), healthy, node=NODE, drivers=["gpu.nvidia.com"])
        == {}
    )


@pytest.mark.parametrize(
    ("reason", "nvml_usable", "value"),
    [
        (LOST, True, "lost"),
        (XID, True, "xid-79"),
        ("critical XID 999 (unknown XID) at ...", True, "xid-999"),
        ("Unknown Error (nvmlDeviceGetMemoryInfo)", True, "nvml-error"),
        ("NVIDIA driver not loaded (nvmlInit: Driver Not Loaded)", False, "nvml-unavailable"),
    ],
)
def test_the_taint_value_is_a_short_reason(reason: str, nvml_usable: bool, value: str) -> None:
    assert taints.taint_value(gpu(0, reason), nvml_usable=nvml_usable) == value
    assert LABEL_VALUE.fullmatch(value) and len(value) <= 63


device_names = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True)
node_names = (
    st.lists(device_names, min_size=1, max_size=6)
    .map(".".join)
    .filter(lambda n: len(n) <= taints.MAX_NODE_NAME)
)


@given(node=node_names, device=device_names)
def test_names_and_labels_are_valid_and_keep_the_node_prefix(node: str, device: str) -> None:
    name = taints.rule_name(node, device)
    assert len(name) <= 253 and DNS_SUBDOMAIN.fullmatch(name), name
    assert name.startswith(f"headroom-{node}-")  # what the admission policy checks
    if len(f"headroom-{node}-{device}") <= 253:
        assert name == f"headroom-{node}-{device}"
    label = taints.node_label_value(node)
    assert len(label) <= 63 and LABEL_VALUE.fullmatch(label), label
    assert (label == node) == (len(node) <= 63)


def test_long_names_are_hashed_distinctly_and_too_long_nodes_refused() -> None:
    node = "n" * 200
    a, b = taints.rule_name(node, "gpu-0" + "x" * 50), taints.rule_name(node, "gpu-1" + "x" * 50)
    assert a != b and len(a) <= 253 and len(b) <= 253
    assert taints.rule_name(node, "gpu-0") == f"headroom-{node}-gpu-0"  # fits: not hashed
    long_a, long_b = "a" * 70, "a" * 69 + "b"
    assert taints.node_label_value(long_a) != taints.node_label_value(long_b)
    assert taints.node_selector(long_a) == f"headroom.dev/node={taints.node_label_value(long_a)}"
    with pytest.raises(ValueError, match="at most 233"):
        taints.rule_name("n" * 234, "gpu-0")


def test_a_rule_is_up_to_date_by_labels_selector_and_taint_only() -> None:
    (wanted,) = taints.wanted_taints(
        report(gpu(0, LOST)),
        slice_devices(resource_slice(NODE, [(UUIDS[0], GIB)])),
        node=NODE,
        drivers=["gpu.nvidia.com"],
    ).values()
    desired = taints.rule_object(wanted, node=NODE, effect="NoExecute")
    served = {
        **desired,
        "metadata": {**desired["metadata"], "resourceVersion": "7", "uid": "u1"},
        "spec": {
            **desired["spec"],
            "taint": {**desired["spec"]["taint"], "timeAdded": "2026-01-01T00:00:00Z"},
        },
    }
    assert taints.up_to_date(served, desired)
    as_xid = taints.rule_object(replace(wanted, value="xid-79"), node=NODE, effect="NoExecute")
    assert not taints.up_to_date(served, as_xid)
    body = taints.updated(served, as_xid)
    assert body["metadata"]["resourceVersion"] == "7"  # an update, not a blind overwrite
    assert body["spec"]["taint"]["value"] == "xid-79"
    assert taints.up_to_date(body, as_xid)
    relabelled = {**served, "metadata": {**served["metadata"], "labels": {}}}
    assert not taints.up_to_date(relabelled, desired)
    assert (
        taints.updated(relabelled, desired)["metadata"]["labels"] == desired["metadata"]["labels"]
    )


def test_unwanted_rules_are_those_of_healthy_gpus_or_unpublished_devices() -> None:
    published = slice_devices(resource_slice(NODE, [(u, GIB) for u in UUIDS]))

    def rule(device: str) -> dict[str, object]:
        selector = {"driver": "gpu.nvidia.com", "pool": NODE, "device": device}
        return {"spec": {"deviceSelector": selector}}

    rules = {f"headroom-gpu-a-{d}": rule(d) for d in ("gpu-0", "gpu-1", "gpu-2", "gpu-9")}
    rules["headroom-gpu-a-odd"] = {"spec": {}}
    seen = report(gpu(0), gpu(1, LOST))  # GPU 2 not in the report at all
    wanted = taints.wanted_taints(seen, published, node=NODE, drivers=["gpu.nvidia.com"])
    assert list(wanted) == ["headroom-gpu-a-gpu-1"]
    assert taints.unwanted(rules, wanted, seen, published) == [
        "headroom-gpu-a-gpu-0",  # healthy
        "headroom-gpu-a-gpu-9",  # no such device
        "headroom-gpu-a-odd",  # selects no device
    ]
    # NVML unusable: only what no slice publishes goes.
    blind = report(gpu(0, "driver gone"), healthy=False)
    assert taints.unwanted(rules, {}, blind, published) == [
        "headroom-gpu-a-gpu-9",
        "headroom-gpu-a-odd",
    ]
