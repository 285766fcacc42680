"""Properties over random pods: the patch applies cleanly and yields `mutate`'s pod, a second
review adds nothing, nothing the pod had is lost, and the old path's pruned diff (kept in the
helpers to compare the recorded patch with) equals the full one."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
from hypothesis import given, settings
from hypothesis import strategies as st

from headroom.demand import GpuDemand
from tests.webhook.helpers import (
    applied,
    changed_parts,
    encode,
    lost,
    patch_of,
    review_body,
    shipped_profiles,
)
from webhook.mutate import mutate
from webhook.review import review

PROFILES = shipped_profiles()
JsonDict = dict[str, Any]

scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=5))
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
label_keys = st.sampled_from(
    [
        "zone",
        "nvidia.com/gpu.present",
        "nvidia.com/gpu.memory",
        "nvidia.com/gpu.family",
        "spot",
        "kubernetes.io/hostname",
    ]
)
requirements = st.builds(
    lambda key, op, values: {
        "key": key,
        "operator": op,
        **({"values": values} if op in ("In", "NotIn") else {}),
    },
    label_keys,
    st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist"]),
    st.lists(st.sampled_from(["true", "a", "b"]), min_size=1, max_size=2),
)
terms = st.one_of(
    st.builds(lambda e: {"matchExpressions": e}, st.lists(requirements, max_size=3)),
    st.just({}),
    st.builds(
        lambda e: {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [e]}]},
        st.text(min_size=1, max_size=4),
    ),
)
tolerations = st.one_of(
    st.just({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}),
    st.just({"key": "nvidia.com/gpu", "operator": "Exists"}),
    st.just({"operator": "Exists"}),
    st.builds(
        lambda k, v, e: {"key": k, "operator": "Equal", "value": v, "effect": e},
        label_keys,
        st.text(max_size=3),
        st.sampled_from(["NoSchedule", "PreferNoSchedule", "NoExecute"]),
    ),
)
env_entries = st.one_of(
    st.builds(
        lambda n, v: {"name": n, "value": v},
        st.sampled_from(["A", "B", "NVIDIA_VISIBLE_DEVICES"]),
        st.text(max_size=3),
    ),
    st.just(
        {
            "name": "NVIDIA_VISIBLE_DEVICES",
            "valueFrom": {
                "fieldRef": {"fieldPath": "metadata.annotations['headroom.dev/assigned-gpus']"}
            },
        }
    ),
)


@st.composite
def containers(draw: st.DrawFn) -> JsonDict:
    container: JsonDict = {"name": draw(st.text(min_size=1, max_size=4)), "image": "x"}
    gpus = draw(st.one_of(st.none(), st.sampled_from(["0", "1", "2", 3])))
    if gpus is not None:
        container["resources"] = {"limits": {"nvidia.com/gpu": gpus}}
    if draw(st.booleans()):
        container["env"] = draw(st.lists(env_entries, max_size=3))
    if draw(st.booleans()):
        container["extra"] = draw(json_values)
    return container


@st.composite
def pods(draw: st.DrawFn) -> JsonDict:
    annotations: JsonDict = draw(
        st.dictionaries(st.sampled_from(["a", "b/c"]), st.text(max_size=3), max_size=2)
    )
    memory = draw(st.one_of(st.none(), st.sampled_from(["1", "512Mi", "20Gi", "1e9", "81920Mi"])))
    if memory is not None:
        annotations["headroom.dev/gpu-memory"] = memory
        if draw(st.booleans()):
            annotations["headroom.dev/gpu-sharing"] = draw(st.sampled_from(["true", "false"]))
    if draw(st.booleans()):
        annotations["headroom.dev/profile"] = draw(st.sampled_from(sorted(PROFILES.profiles)))
    spec: JsonDict = {"containers": draw(st.lists(containers(), min_size=1, max_size=3))}
    if draw(st.booleans()):
        spec["initContainers"] = draw(st.lists(containers(), max_size=2))
    if draw(st.booleans()):
        spec["tolerations"] = draw(st.lists(tolerations, max_size=3))
    node: JsonDict = {}
    if draw(st.booleans()):
        node["requiredDuringSchedulingIgnoredDuringExecution"] = {
            "nodeSelectorTerms": draw(st.lists(terms, max_size=3))
        }
    if draw(st.booleans()):
        node["preferredDuringSchedulingIgnoredDuringExecution"] = draw(
            st.lists(
                st.builds(
                    lambda w, e: {"weight": w, "preference": {"matchExpressions": e}},
                    st.integers(1, 100),
                    st.lists(requirements, min_size=1, max_size=2),
                ),
                max_size=2,
            )
        )
    empty_affinity: bool = draw(st.booleans())
    if node or empty_affinity:
        spec["affinity"] = {"nodeAffinity": node}
    if draw(st.booleans()):
        spec["readinessGates"] = draw(
            st.lists(
                st.builds(
                    lambda c: {"conditionType": c},
                    st.sampled_from(["headroom.dev/gpu-ready", "x/y"]),
                ),
                max_size=2,
            )
        )
    if draw(st.booleans()):
        spec["schedulerName"] = draw(st.sampled_from(["default-scheduler", "headroom", "other"]))
    if draw(st.booleans()):
        spec["extra"] = draw(json_values)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "p",
            "labels": {"headroom.dev/managed": "true"},
            "annotations": annotations,
        },
        "spec": spec,
    }


@settings(max_examples=300)
@given(pods())
def test_the_patch_applies_is_idempotent_and_loses_nothing(pod: JsonDict) -> None:
    before = copy.deepcopy(pod)
    outcome = review(encode(review_body(pod)), PROFILES, version="0.1.0")
    response: JsonDict = dict(outcome.body["response"])  # type: ignore[typeddict-item]
    assert outcome.status == 200 and response["uid"] == "uid-1"
    if not response["allowed"]:
        assert outcome.result == "denied" and "patch" not in response
        return
    result = applied(pod, response)  # raises if the patch does not apply cleanly
    assert pod == before
    assert lost(pod, result) == {}
    again = review(encode(review_body(result)), PROFILES, version="0.1.0")
    assert patch_of(again.body["response"]) == []  # type: ignore[typeddict-item,arg-type]
    demand = GpuDemand.from_pod(pod)
    if demand is not None:
        profile = PROFILES.profiles[
            pod["metadata"]["annotations"].get("headroom.dev/profile", "default")
        ]
        assert result == mutate(pod, profile, demand=demand, version="0.1.0")


@settings(max_examples=200)
@given(pods())
def test_the_pruned_diff_is_the_full_diff(pod: JsonDict) -> None:
    demand = GpuDemand.from_pod(pod) or GpuDemand(gpu_count=1)
    profile = PROFILES.profiles["default"]
    result = mutate(pod, profile, demand=demand, version="0.1.0")
    # Compared by what they make: jsonpatch 1.33 orders independent operations by set order.
    pruned = jsonpatch.make_patch(*changed_parts(pod, result)).patch
    assert jsonpatch.apply_patch(pod, pruned) == result
    assert jsonpatch.apply_patch(pod, jsonpatch.make_patch(pod, result).patch) == result
