"""Builders shared by the webhook tests: AdmissionReviews, the corpus, patch decoding, and the
webhook's former way of making its patch (a diff; see `old_patch`) to compare the new one with."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonpatch
import yaml

from webhook.profiles import ProfileSet
from webhook.store import load_profiles

ROOT = Path(__file__).resolve().parents[2]
CORPUS_DIR = Path(__file__).resolve().parent / "corpus"
PROFILES_FILE = ROOT / "manifests" / "webhook" / "profiles.yaml"
VERSION = "0.1.0"
MANAGED = {"headroom.dev/managed": "true"}
POD_KIND = {"group": "", "version": "v1", "kind": "Pod"}
POD_RESOURCE = {"group": "", "version": "v1", "resource": "pods"}

JsonDict = dict[str, Any]


def shipped_profiles() -> ProfileSet:
    return load_profiles(PROFILES_FILE)


def corpus() -> dict[str, JsonDict]:
    """The realistic pods under corpus/, by file stem."""
    return {
        path.stem: yaml.safe_load(path.read_text()) for path in sorted(CORPUS_DIR.glob("*.yaml"))
    }


def review_body(
    obj: Any,
    *,
    uid: str = "uid-1",
    operation: str = "CREATE",
    kind: JsonDict | None = None,
    dry_run: bool = False,
) -> JsonDict:
    request: JsonDict = {
        "uid": uid,
        "kind": kind or POD_KIND,
        "resource": POD_RESOURCE,
        "operation": operation,
        "namespace": "ns",
        "name": "p",
        "object": obj,
        "dryRun": dry_run,
    }
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


def encode(document: Any) -> bytes:
    return json.dumps(document).encode()


def gpu_pod(
    *,
    annotations: dict[str, str] | None = None,
    gpus: str | None = "1",
    spec: JsonDict | None = None,
    labels: dict[str, str] | None = None,
) -> JsonDict:
    """A managed pod with one container; `gpus` its nvidia.com/gpu limit (None: no limit)."""
    container: JsonDict = {"name": "server", "image": "example/server:1"}
    if gpus is not None:
        container["resources"] = {"limits": {"nvidia.com/gpu": gpus}}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "p",
            "labels": {**MANAGED, **(labels or {})},
            "annotations": dict(annotations or {}),
        },
        "spec": {"containers": [container], **(spec or {})},
    }


def patch_of(response: JsonDict) -> list[JsonDict]:
    """The JSONPatch operations of an AdmissionResponse ([] when it carries none)."""
    if "patch" not in response:
        return []
    assert response["patchType"] == "JSONPatch"
    operations: list[JsonDict] = json.loads(base64.b64decode(response["patch"]))
    return operations


def applied(pod: JsonDict, response: JsonDict) -> JsonDict:
    """`pod` with the response's patch applied (the pod itself is left as it was)."""
    result: JsonDict = jsonpatch.apply_patch(copy.deepcopy(pod), patch_of(response))
    return result


def old_patch(original: Mapping[str, Any], mutated: Mapping[str, Any]) -> list[JsonDict]:
    """The JSONPatch the webhook sent before it recorded its operations (`webhook.patch`):
    `jsonpatch.make_patch` between the pod and `mutate`'s result, pruned by `changed_parts`."""
    operations: list[JsonDict] = jsonpatch.make_patch(*changed_parts(original, mutated)).patch
    return operations


def changed_parts(
    original: Mapping[str, Any], mutated: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The two documents without the parts they share unchanged, for a faster, equal diff.

    `mutate` copies only what it changes, so most of a pod is the very same object on both
    sides; diffing those subtrees is where `make_patch` would spend its time. An object member
    shared by both is left out (members are keyed by name: no other path moves). A list item
    shared at the same index becomes the same small placeholder on both sides, so indices stay
    and the diff sees an equal item. `mutate` never removes, so no placeholder can be moved.
    """
    src: dict[str, Any] = {}
    dst: dict[str, Any] = {}
    for key, old in original.items():
        if key not in mutated:
            src[key] = old
            continue
        new = mutated[key]
        if new is old:
            continue
        if isinstance(old, dict) and isinstance(new, dict):
            src[key], dst[key] = changed_parts(old, new)
        elif isinstance(old, list) and isinstance(new, list):
            src[key], dst[key] = _changed_items(old, new)
        else:
            src[key], dst[key] = old, new
    for key, new in mutated.items():
        if key not in original:
            dst[key] = new
    return src, dst


def _changed_items(old: list[Any], new: list[Any]) -> tuple[list[Any], list[Any]]:
    same = [i for i in range(min(len(old), len(new))) if old[i] is new[i]]
    src, dst = list(old), list(new)
    for i in same:
        src[i] = dst[i] = f"\0unchanged item {i}"
    return src, dst


def leaves(value: Any, path: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], Any]:
    """Every scalar (and empty container) of a JSON value, by its path."""
    if isinstance(value, dict) and value:
        return {p: v for k, item in value.items() for p, v in leaves(item, (*path, k)).items()}
    if isinstance(value, list) and value:
        return {p: v for i, item in enumerate(value) for p, v in leaves(item, (*path, i)).items()}
    return {path: value}


# What the webhook may change in place: a default scheduler name, and its own stamp.
MAY_CHANGE = {("spec", "schedulerName"), ("metadata", "annotations", "headroom.dev/mutated-by")}


def lost(original: JsonDict, mutated: JsonDict) -> dict[tuple[Any, ...], Any]:
    """Leaves of `original` that `mutated` no longer has with the same value (an empty object
    or list that gained members is not lost)."""
    after = leaves(mutated)
    missing = {}
    for path, value in leaves(original).items():
        if path in MAY_CHANGE or (path in after and after[path] == value):
            continue
        if value in ({}, []) and any(p[: len(path)] == path for p in after):
            continue
        missing[path] = value
    return missing


def dra_pod(
    *claims: JsonDict,
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    spec: JsonDict | None = None,
) -> JsonDict:
    """A managed pod in namespace "ns" whose GPUs come from `claims` (its `spec.resourceClaims`
    entries, e.g. {"name": "gpu", "resourceClaimTemplateName": "one-gpu"}), no nvidia.com/gpu."""
    pod = gpu_pod(annotations=annotations, gpus=None, labels=labels, spec=spec)
    pod["metadata"]["namespace"] = "ns"
    pod["spec"]["resourceClaims"] = list(claims)
    pod["spec"]["containers"][0]["resources"] = {"claims": [{"name": c["name"]} for c in claims]}
    return pod


def claim_spec(*requests: JsonDict) -> JsonDict:
    """A ResourceClaim spec (a template's `spec.spec`) with these requests' `exactly` parts."""
    return {
        "devices": {"requests": [{"name": f"r{i}", "exactly": r} for i, r in enumerate(requests)]}
    }


def template(name: str, *requests: JsonDict) -> JsonDict:
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaimTemplate",
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {"spec": claim_spec(*requests)},
    }


def claim(name: str, *requests: JsonDict) -> JsonDict:
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaim",
        "metadata": {"name": name, "namespace": "ns"},
        "spec": claim_spec(*requests),
    }


GPU_REQUEST: JsonDict = {"deviceClassName": "gpu.nvidia.com"}
