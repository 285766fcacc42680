"""The recorder of a mutation's JSONPatch, and the operations `mutate_with_patch` records for
each kind of change: add vs replace, a list appended at `/-` vs put whole, an object the pod
lacked put whole as one operation, and JSON Pointer escaping."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import pytest

from headroom.demand import GpuDemand
from tests.webhook.helpers import gpu_pod
from webhook.mutate import mutate_with_patch, stamp, visible_devices_env
from webhook.patch import Recorder, escape
from webhook.profiles import parse_profile

DEFAULT = parse_profile("default", {})
STAMP_PATH = "/metadata/annotations/headroom.dev~1mutated-by"
STAMP = stamp(DEFAULT, version="9.9.9")
PRESENT = {"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
GATE = {"conditionType": "headroom.dev/gpu-ready"}
SELECTOR = "/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution"


ONE_GPU = GpuDemand(gpu_count=1)


def operations(pod: dict[str, Any], demand: GpuDemand = ONE_GPU) -> list[dict[str, Any]]:
    """The recorded operations, checked to turn `pod` into the mutated pod."""
    before = copy.deepcopy(pod)
    mutated, recorded = mutate_with_patch(pod, DEFAULT, demand=demand, version="9.9.9")
    assert jsonpatch.apply_patch(pod, recorded) == mutated
    assert pod == before
    return recorded


# -- the recorder ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "token"),
    [("plain", "plain"), ("a/b", "a~1b"), ("a~b", "a~0b"), ("~1", "~01"), ("/~", "~1~0"), (3, "3")],
)
def test_a_key_is_escaped_as_rfc_6901_says(key: str | int, token: str) -> None:
    assert escape(key) == token


def test_keys_with_slashes_and_tildes_point_where_they_should() -> None:
    doc: dict[str, Any] = {"m": {"a/b": {"~x": 1}}}
    ops = Recorder()
    inner = ops.enter("m", exists=True).enter("a/b", exists=True)
    changed = dict(doc["m"]["a/b"])
    inner.put(changed, "~x", 2)
    inner.put(changed, "y/~", 3)
    assert ops.operations == [
        {"op": "replace", "path": "/m/a~1b/~0x", "value": 2},
        {"op": "add", "path": "/m/a~1b/y~1~0", "value": 3},
    ]
    assert jsonpatch.apply_patch(doc, ops.operations) == {"m": {"a/b": {"~x": 2, "y/~": 3}}}


def test_put_adds_replaces_null_and_skips_an_equal_value() -> None:
    ops = Recorder()
    holder: dict[str, Any] = {"null": None, "same": "v"}
    ops.put(holder, "new", 1)
    ops.put(holder, "null", {})
    ops.put(holder, "same", "v")
    assert holder == {"null": {}, "same": "v", "new": 1}
    assert ops.operations == [
        {"op": "add", "path": "/new", "value": 1},
        {"op": "replace", "path": "/null", "value": {}},
    ]


def test_extend_appends_to_a_list_and_puts_a_missing_one_whole() -> None:
    ops = Recorder()
    holder: dict[str, Any] = {"list": [1], "empty": [], "null": None}
    ops.extend(holder, "list", [1], [2, 3])
    ops.extend(holder, "empty", [], [4])
    ops.extend(holder, "null", [], [5])
    ops.extend(holder, "absent", [], [6])
    assert holder == {"list": [1, 2, 3], "empty": [4], "null": [5], "absent": [6]}
    assert ops.operations == [
        {"op": "add", "path": "/list/-", "value": 2},
        {"op": "add", "path": "/list/-", "value": 3},
        {"op": "add", "path": "/empty/-", "value": 4},
        {"op": "replace", "path": "/null", "value": [5]},
        {"op": "add", "path": "/absent", "value": [6]},
    ]


def test_an_object_the_input_lacked_is_recorded_whole_once_complete() -> None:
    ops = Recorder()
    root: dict[str, Any] = {}
    outer = ops.enter("a", exists=False)
    a: dict[str, Any] = {}
    inner = outer.enter("b", exists=True)  # muted too: its parent is new
    b: dict[str, Any] = {}
    inner.put(b, "c", 1)
    outer.attach(a, "b", b, inner)
    ops.attach(root, "a", a, outer)
    assert ops.operations == [{"op": "add", "path": "/a", "value": {"b": {"c": 1}}}]


def test_an_item_that_was_null_is_replaced_whole() -> None:
    ops = Recorder()
    items: list[Any] = [None, {"x": 1}]
    at_null, at_item = ops.enter(0, exists=False), ops.enter(1, exists=True)
    ops.attach_item(items, 0, {"x": 0}, at_null)
    ops.attach_item(items, 1, {"x": 1}, at_item)
    assert ops.operations == [{"op": "replace", "path": "/0", "value": {"x": 0}}]


# -- what mutate records ---------------------------------------------------------------------------


def test_a_bare_gpu_pod_gets_one_operation_per_new_member() -> None:
    assert operations(gpu_pod()) == [
        {"op": "add", "path": STAMP_PATH, "value": STAMP},
        {"op": "add", "path": "/spec/tolerations", "value": [GPU_TOLERATION]},
        {
            "op": "add",
            "path": "/spec/affinity",
            "value": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [{"matchExpressions": [PRESENT]}]
                    }
                }
            },
        },
        {"op": "add", "path": "/spec/readinessGates", "value": [GATE]},
        {"op": "add", "path": "/spec/schedulerName", "value": "headroom"},
    ]


STAMPED = {"headroom.dev/mutated-by": STAMP}


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        (None, ("replace", "/metadata", {"annotations": STAMPED})),
        ({"name": "p"}, ("add", "/metadata/annotations", STAMPED)),
        ({"annotations": None}, ("replace", "/metadata/annotations", STAMPED)),
        ({"annotations": {"a/b": "c"}}, ("add", STAMP_PATH, STAMP)),
        ({"annotations": {"headroom.dev/mutated-by": "old"}}, ("replace", STAMP_PATH, STAMP)),
    ],
)
def test_the_stamp_goes_where_the_pod_has_room(
    metadata: dict[str, Any] | None, expected: tuple[str, str, Any]
) -> None:
    op, path, value = expected
    pod: dict[str, Any] = {"metadata": metadata, "spec": {"containers": []}}
    assert operations(pod)[0] == {"op": op, "path": path, "value": value}


def test_the_same_stamp_is_not_recorded_again() -> None:
    pod = {"metadata": {"annotations": dict(STAMPED)}, "spec": {"containers": []}}
    assert not any(op["path"].startswith("/metadata") for op in operations(pod))


def test_requirements_are_appended_to_each_term_by_index_and_empty_terms_are_left() -> None:
    spec = {
        "containers": [],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "zone", "operator": "Exists"}]},
                        {},
                        {
                            "matchFields": [
                                {"key": "metadata.name", "operator": "In", "values": ["n"]}
                            ],
                            "matchExpressions": None,
                        },
                    ]
                }
            }
        },
    }
    recorded = [op for op in operations(gpu_pod(spec=spec)) if "affinity" in op["path"]]
    assert recorded == [
        {
            "op": "add",
            "path": f"{SELECTOR}/nodeSelectorTerms/0/matchExpressions/-",
            "value": PRESENT,
        },
        {
            "op": "replace",
            "path": f"{SELECTOR}/nodeSelectorTerms/2/matchExpressions",
            "value": [PRESENT],
        },
    ]


@pytest.mark.parametrize(
    ("node_affinity", "path"),
    [
        (None, "/spec/affinity/nodeAffinity"),
        ({}, f"{SELECTOR}"),
        ({"requiredDuringSchedulingIgnoredDuringExecution": None}, SELECTOR),
        ({"requiredDuringSchedulingIgnoredDuringExecution": {}}, f"{SELECTOR}/nodeSelectorTerms"),
        (
            {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}},
            f"{SELECTOR}/nodeSelectorTerms",
        ),
    ],
)
def test_the_first_missing_level_of_the_affinity_is_put_whole(
    node_affinity: dict[str, Any] | None, path: str
) -> None:
    spec = {"containers": [], "affinity": {"nodeAffinity": node_affinity}}
    recorded = [op for op in operations(gpu_pod(spec=spec)) if "affinity" in op["path"]]
    assert [op["path"] for op in recorded] == [path]


def test_shared_mode_env_is_put_or_appended_per_container() -> None:
    env = visible_devices_env("NVIDIA_VISIBLE_DEVICES")
    pod = gpu_pod(gpus=None)
    pod["spec"]["containers"] = [
        {"name": "a"},
        {"name": "b", "env": [{"name": "X", "value": "1"}]},
        {"name": "c", "env": None},
        {"name": "d", "env": [env]},
        None,  # not a valid pod (the review refuses it first), but mutate's patch still applies
    ]
    shared = GpuDemand(gpu_count=1, memory_bytes=2**30, shared=True)
    recorded = [op for op in operations(pod, shared) if op["path"].startswith("/spec/containers")]
    assert recorded == [
        {"op": "add", "path": "/spec/containers/0/env", "value": [env]},
        {"op": "add", "path": "/spec/containers/1/env/-", "value": env},
        {"op": "replace", "path": "/spec/containers/2/env", "value": [env]},
        {"op": "replace", "path": "/spec/containers/4", "value": {"env": [env]}},
    ]


@pytest.mark.parametrize(
    ("current", "op"), [(None, "replace"), ("", "replace"), ("default-scheduler", "replace")]
)
def test_a_default_scheduler_name_is_replaced(current: str | None, op: str) -> None:
    pod = gpu_pod(spec={"schedulerName": current})
    assert {"op": op, "path": "/spec/schedulerName", "value": "headroom"} in operations(pod)


@pytest.mark.parametrize("spec", [None, "absent"])
def test_a_pod_without_a_spec_gets_one_whole(spec: str | None) -> None:
    pod = gpu_pod()
    if spec is None:
        pod["spec"] = None
    else:
        del pod["spec"]
    recorded = operations(pod)
    assert [(op["op"], op["path"]) for op in recorded[1:]] == [
        ("replace" if spec is None else "add", "/spec")
    ]


def test_a_second_pass_records_nothing() -> None:
    pod = gpu_pod(annotations={"headroom.dev/gpu-memory": "20Gi"})
    shared = GpuDemand(gpu_count=1, memory_bytes=20 * 2**30, shared=True)
    mutated, first = mutate_with_patch(pod, DEFAULT, demand=shared, version="9.9.9")
    assert first
    assert mutate_with_patch(mutated, DEFAULT, demand=shared, version="9.9.9").operations == []
