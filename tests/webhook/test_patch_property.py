"""The recorded JSONPatch, over random pods in every partial shape, each shipped profile and
each kind of demand: applied to the pod it is exactly `mutate`'s pod, a second pass records nothing,
the input is never modified, and the former diff (`old_patch`) applies to the same pod.

The pods are drawn member by member: each optional member is absent, JSON null or a value, at
every level `mutate` reads (metadata, annotations with `/` and `~` in their keys, tolerations,
affinity down to each term's matchExpressions, readiness gates, containers' env, schedulerName),
with values that already hold what a profile adds now and then, so both branches of each
"add unless present" are taken.
"""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import jsonpatch
from hypothesis import given, settings
from hypothesis import strategies as st

from headroom.demand import GpuDemand
from tests.webhook.helpers import encode, old_patch, patch_of, review_body, shipped_profiles
from webhook.mutate import (
    MUTATED_BY_ANNOTATION,
    memory_requirement,
    mutate,
    mutate_with_patch,
    stamp,
    visible_devices_env,
)
from webhook.profiles import Profile
from webhook.review import review

JsonDict = dict[str, Any]
VERSION = "0.1.0"
PROFILES = shipped_profiles()
GIB = 2**30
DEMANDS = [
    GpuDemand(gpu_count=1),
    GpuDemand(gpu_count=2, memory_bytes=40 * GIB),
    GpuDemand(gpu_count=1, memory_bytes=20 * GIB, shared=True),
    GpuDemand(gpu_count=1, dra=True),
    GpuDemand(gpu_count=1, memory_bytes=8 * GIB, shared=True, dra=True),
]
PRESENT = {"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]}
FAMILY = {"key": "nvidia.com/gpu.family", "operator": "In", "values": ["ampere", "hopper"]}
GATE = {"conditionType": "headroom.dev/gpu-ready"}


@st.composite
def nullable(draw: st.DrawFn, strategy: st.SearchStrategy[Any]) -> Any:
    """A member's value: JSON null one time in four, else `strategy`'s."""
    return None if draw(st.integers(0, 3)) == 0 else draw(strategy)


# How an optional member is drawn: absent, null, or (more often) a value; first what most draws
# (and shrinking) pick.
SHAPES = ("value", "absent", "null", "value", "value")


@st.composite
def members(
    draw: st.DrawFn,
    /,
    required: dict[str, st.SearchStrategy[Any]] | None = None,
    **optional: st.SearchStrategy[Any],
) -> JsonDict:
    """An object with the `required` members and each `optional` one absent, null or a value."""
    out = {key: draw(strategy) for key, strategy in (required or {}).items()}
    for key, strategy in optional.items():
        shape = draw(st.sampled_from(SHAPES))
        if shape != "absent":
            out[key] = None if shape == "null" else draw(strategy)
    return out


texts = st.text(max_size=3)
annotation_keys = st.sampled_from(["a", "b/c", "t~il~de", "~1/~0", "/", "~", "headroom.dev/x"])
requirements = st.one_of(
    st.just(PRESENT),
    st.just(FAMILY),
    st.just(memory_requirement(40 * GIB)),
    st.builds(
        lambda key, op: {"key": key, "operator": op},
        st.sampled_from(["zone", "nvidia.com/gpu.present", "spot"]),
        st.sampled_from(["Exists", "DoesNotExist"]),
    ),
)
field_requirements = st.just([{"key": "metadata.name", "operator": "In", "values": ["n"]}])
terms = members(
    matchExpressions=st.lists(requirements, max_size=3),
    matchFields=field_requirements,
)  # {} too: a term that matches no node, left so
preferred_terms = st.one_of(
    st.just({"weight": 50, "preference": {"matchExpressions": [FAMILY]}}),
    st.builds(
        lambda w, e: {"weight": w, "preference": {"matchExpressions": e}},
        st.integers(1, 100),
        st.lists(requirements, min_size=1, max_size=2),
    ),
)
REQUIRED_LEVELS = ("nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution")


@st.composite
def affinities(draw: st.DrawFn) -> JsonDict:
    """`spec.affinity` down to the terms, cut off (absent or null) at a drawn level, if any."""
    terms_value = draw(nullable(st.lists(terms, max_size=3)))
    node: JsonDict = {REQUIRED_LEVELS[1]: {"nodeSelectorTerms": terms_value}}
    if draw(st.booleans()):
        preferred = st.lists(preferred_terms, max_size=2)
        node["preferredDuringSchedulingIgnoredDuringExecution"] = draw(nullable(preferred))
    affinity: JsonDict = {"nodeAffinity": node}
    if draw(st.booleans()):
        affinity["podAffinity"] = {}  # a sibling the patch must leave alone
    holders = [affinity, node, node[REQUIRED_LEVELS[1]]]
    level = draw(st.sampled_from([0, 1, 2, 3, 3, 3]))  # 3: not cut
    if level < len(holders):
        key = [*REQUIRED_LEVELS, "nodeSelectorTerms"][level]
        if draw(st.booleans()):
            holders[level][key] = None
        else:
            del holders[level][key]
    return affinity


tolerations = st.one_of(
    st.just({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}),
    st.just({"key": "nvidia.com/gpu", "operator": "Exists"}),
    st.just({"operator": "Exists"}),
    st.just({"key": "spot", "operator": "Equal", "value": "yes", "effect": "NoExecute"}),
)
env_entries = st.one_of(
    st.builds(lambda n, v: {"name": n, "value": v}, st.sampled_from(["A", "B"]), texts),
    st.just({"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"}),
    st.just(visible_devices_env("NVIDIA_VISIBLE_DEVICES")),
)
gpu_counts = st.fixed_dictionaries({"nvidia.com/gpu": st.sampled_from(["1", "2"])})
containers = members(
    {"name": st.text(min_size=1, max_size=3), "image": st.just("x")},
    resources=members(limits=gpu_counts, requests=gpu_counts),
    env=st.lists(env_entries, max_size=3),
)
specs = members(
    {"containers": st.lists(containers, max_size=3)},
    initContainers=st.lists(containers, max_size=1),
    tolerations=st.lists(tolerations, max_size=3),
    affinity=affinities(),
    readinessGates=st.lists(st.sampled_from([GATE, {"conditionType": "x/y"}]), max_size=2),
    schedulerName=st.sampled_from(["", "default-scheduler", "headroom", "custom"]),
)


@st.composite
def cases(draw: st.DrawFn) -> tuple[JsonDict, Profile, GpuDemand]:
    """(pod, profile, demand); the pod sometimes carries a stamp, old or the one it would get."""
    profile: Profile = draw(
        st.sampled_from([PROFILES.profiles[n] for n in sorted(PROFILES.profiles)])
    )
    metadata = draw(
        members(
            {"name": st.just("p")},
            labels=st.dictionaries(st.sampled_from(["app", "a/b"]), texts, max_size=2),
            annotations=st.dictionaries(annotation_keys, texts, max_size=3),
        )
    )
    stamped = draw(st.sampled_from(["no", "old", "current"]))
    if stamped != "no" and isinstance(metadata.get("annotations"), dict):
        old = "webhook/0.0.1 profile=x rev=y"
        current = stamp(profile, version=VERSION)
        metadata["annotations"][MUTATED_BY_ANNOTATION] = old if stamped == "old" else current
    pod: JsonDict = {"apiVersion": "v1", "kind": "Pod"}
    for key, member in (("metadata", metadata), ("spec", draw(specs))):
        shape = draw(st.sampled_from(SHAPES))
        if shape != "absent":
            pod[key] = member if shape == "value" else None
    return pod, profile, draw(st.sampled_from(DEMANDS))


def canonical(value: Any) -> str:
    """JSON text with sorted keys: equal only if equal as JSON (1, 1.0 and True differ)."""
    return json.dumps(value, sort_keys=True)


def apply(pod: JsonDict, operations: list[JsonDict]) -> Any:
    """The operations as the API server gets them (JSON text), applied to a copy of `pod`."""
    return jsonpatch.apply_patch(pod, json.loads(json.dumps(operations)))


@settings(max_examples=500)
@given(cases())
def test_the_recorded_patch_yields_mutates_pod_exactly(case: tuple[JsonDict, Profile, Any]) -> None:
    pod, profile, demand = case
    before = copy.deepcopy(pod)
    mutated, operations = mutate_with_patch(pod, profile, demand=demand, version=VERSION)
    assert canonical(pod) == canonical(before)  # the input is never modified
    assert canonical(apply(pod, operations)) == canonical(mutated)
    assert canonical(pod) == canonical(before)
    assert {op["op"] for op in operations} <= {"add", "replace"}
    assert canonical(mutated) == canonical(mutate(pod, profile, demand=demand, version=VERSION))
    again = mutate_with_patch(mutated, profile, demand=demand, version=VERSION)
    assert again.operations == []
    assert canonical(again.pod) == canonical(mutated)


@settings(max_examples=300)
@given(cases())
def test_the_former_diff_yields_the_same_pod(case: tuple[JsonDict, Profile, Any]) -> None:
    pod, profile, demand = case
    mutated, operations = mutate_with_patch(pod, profile, demand=demand, version=VERSION)
    old = old_patch(pod, mutated)
    assert canonical(apply(pod, old)) == canonical(apply(pod, operations)) == canonical(mutated)
    assert (old == []) == (operations == [])


@settings(max_examples=200)
@given(cases())
def test_a_review_sends_the_recorded_patch(case: tuple[JsonDict, Profile, Any]) -> None:
    pod, _, _ = case
    if not isinstance(pod.get("metadata"), dict):
        return  # no label: not managed, not reviewed (the first property covers the mutation)
    pod["metadata"]["labels"] = {"headroom.dev/managed": "true"}
    outcome = review(encode(review_body(pod)), PROFILES, version=VERSION)
    response: JsonDict = dict(outcome.body["response"])  # type: ignore[typeddict-item]
    if "patch" not in response:
        assert outcome.result in ("ignored", "unchanged", "denied")
        return
    operations = json.loads(base64.b64decode(response["patch"]))
    assert operations == patch_of(response) and outcome.operations == len(operations)
    demand = GpuDemand.from_pod(pod)
    assert demand is not None
    profile = PROFILES.profiles[
        (pod["metadata"].get("annotations") or {}).get("headroom.dev/profile", "default")
    ]
    expected = mutate_with_patch(pod, profile, demand=demand, version=VERSION)
    assert operations == json.loads(json.dumps(expected.operations))
    assert canonical(apply(pod, operations)) == canonical(expected.pod)
