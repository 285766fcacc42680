"""The mutation of a managed pod, as a pure function: (pod, profile, demand) -> mutated pod.

What is injected (DESIGN.md): the profile's tolerations unless already tolerated; its required
node-selector requirements ANDed into every existing `nodeSelectorTerm` (terms are ORed, so each
alternative must demand a GPU node), plus `nvidia.com/gpu.memory Gt <MiB - 1>` when the pod
declares a need; its preferred terms appended; the readiness gate; `schedulerName` when the pod
has the default one; in shared mode the visible-devices env from the downward API into the
containers that use GPUs; and the `MUTATED_BY_ANNOTATION` stamp.

A pod whose GPUs come from DRA ResourceClaims (`demand.dra`) gets neither the required node
affinity nor the visible-devices env: the profile's terms and the memory term are labels of GPU
feature discovery, which clusters that hand out GPUs through DRA need not have (the allocator
already keeps the pod to nodes whose ResourceSlices can satisfy its claims), and the DRA driver
injects the devices itself. It keeps the tolerations, the preferred terms, the gate and the
scheduler.

Rules that make it safe to run twice and on anything: the input is never modified (changed paths
are copied, the rest is shared); nothing the pod had is removed or changed, except a default
`schedulerName` and our own stamp; each addition is skipped when already present, so a second
pass returns an equal pod. A field of the wrong JSON type raises `MutationError` naming it.

`mutate_with_patch` also returns the JSONPatch (RFC 6902) that turns the input into the result:
each helper records its change as it makes it (`webhook.patch.Recorder`), so the webhook sends
what was done without diffing the two pods. A second pass records no operation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from headroom import names
from headroom.demand import GpuDemand
from headroom.fields import FieldError, read_optional_list, read_optional_mapping
from webhook.patch import Recorder
from webhook.profiles import Profile

JsonDict = dict[str, Any]

MUTATED_BY_ANNOTATION = names.MUTATED_BY_ANNOTATION
MIB = 2**20


class MutationError(FieldError):
    """A pod field of the wrong shape; `field` is its path, e.g. `spec.tolerations`."""


def copy_json(value: Any) -> Any:
    """A deep copy of a JSON value (profile data put into a pod must not be shared with it);
    several times faster than copy.deepcopy, which it only needs to be for dicts and lists."""
    if isinstance(value, dict):
        return {k: copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_json(v) for v in value]
    return value


def stamp(profile: Profile, *, version: str) -> str:
    """The value of the mutated-by annotation: who mutated the pod, with which profile."""
    return f"webhook/{version} profile={profile.name} rev={profile.digest}"


def memory_requirement(memory_bytes: int) -> JsonDict:
    """Nodes whose GPUs have at least `memory_bytes` each. GPU feature discovery labels a node
    with the MiB of one GPU, so "at least N MiB" is `Gt N-1` (N rounded up)."""
    need_mib = -(-memory_bytes // MIB)
    return {"key": names.GPU_MEMORY_NODE_LABEL, "operator": "Gt", "values": [str(need_mib - 1)]}


class Mutation(NamedTuple):
    """A mutated pod and the JSONPatch operations (RFC 6902) that turn the input into it."""

    pod: JsonDict
    operations: list[JsonDict]


def mutate(
    pod: Mapping[str, Any], profile: Profile, *, demand: GpuDemand, version: str
) -> JsonDict:
    """The pod as the profile wants it; `pod` itself is left untouched."""
    return mutate_with_patch(pod, profile, demand=demand, version=version).pod


def mutate_with_patch(
    pod: Mapping[str, Any], profile: Profile, *, demand: GpuDemand, version: str
) -> Mutation:
    """`mutate`, with the operations each change was recorded as while it was made
    (`webhook.patch`); none when the pod already is as the profile wants it."""
    root = Recorder()
    out = dict(pod)
    _stamp(out, stamp(profile, version=version), root)
    spec = dict(_dict(pod.get("spec"), "spec"))
    at_spec = root.enter("spec", exists=pod.get("spec") is not None)
    _add_tolerations(spec, profile, at_spec)
    required = [] if demand.dra else list(profile.required_node_affinity)
    if demand.memory_bytes and profile.gpu_memory_affinity and not demand.dra:
        required.append(memory_requirement(demand.memory_bytes))
    _merge_node_affinity(spec, required, profile.preferred_node_affinity, at_spec)
    if profile.readiness_gate:
        _add_readiness_gate(spec, at_spec)
    current = spec.get("schedulerName")
    if profile.scheduler_name and current in (None, "", names.DEFAULT_SCHEDULER_NAME):
        at_spec.put(spec, "schedulerName", profile.scheduler_name)
    if demand.shared and not demand.dra:
        _add_visible_devices(spec, profile.sharing.env, at_spec)
    root.attach(out, "spec", spec, at_spec)
    return Mutation(out, root.operations)


def _stamp(out: JsonDict, value: str, ops: Recorder) -> None:
    """`out["metadata"]`: a copy of the pod's, with our annotation set to `value`."""
    metadata = dict(_dict(out.get("metadata"), "metadata"))
    at_metadata = ops.enter("metadata", exists=out.get("metadata") is not None)
    annotations = dict(_dict(metadata.get("annotations"), "metadata.annotations"))
    at_annotations = at_metadata.enter(
        "annotations", exists=metadata.get("annotations") is not None
    )
    at_annotations.put(annotations, MUTATED_BY_ANNOTATION, value)
    at_metadata.attach(metadata, "annotations", annotations, at_annotations)
    ops.attach(out, "metadata", metadata, at_metadata)


# -- tolerations -----------------------------------------------------------------------------------


def tolerates(existing: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """True when `existing` already tolerates every taint `wanted` tolerates."""
    if dict(existing) == dict(wanted):
        return True
    if existing.get("operator") != "Exists" or existing.get("tolerationSeconds") is not None:
        return False
    return existing.get("key") in (None, "", wanted.get("key")) and existing.get("effect") in (
        None,
        "",
        wanted.get("effect"),
    )


def _add_tolerations(spec: JsonDict, profile: Profile, ops: Recorder) -> None:
    tolerations = _list(spec.get("tolerations"), "spec.tolerations")
    have = [_dict(t, f"spec.tolerations[{i}]") for i, t in enumerate(tolerations)]
    missing = [t for t in profile.tolerations if not any(tolerates(h, t) for h in have)]
    if missing:
        ops.extend(spec, "tolerations", tolerations, [copy_json(t) for t in missing])


# -- node affinity ---------------------------------------------------------------------------------


def _merge_node_affinity(
    spec: JsonDict, required: list[JsonDict], preferred: tuple[JsonDict, ...], ops: Recorder
) -> None:
    affinity = dict(_dict(spec.get("affinity"), "spec.affinity"))
    at_affinity = ops.enter("affinity", exists=spec.get("affinity") is not None)
    node = dict(_dict(affinity.get("nodeAffinity"), "spec.affinity.nodeAffinity"))
    at_node = at_affinity.enter("nodeAffinity", exists=affinity.get("nodeAffinity") is not None)
    changed = False
    if required:
        changed |= _merge_required(node, required, at_node)
    if preferred:
        changed |= _append_missing(
            node,
            "preferredDuringSchedulingIgnoredDuringExecution",
            preferred,
            where="spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution",
            ops=at_node,
        )
    if changed:
        at_affinity.attach(affinity, "nodeAffinity", node, at_node)
        ops.attach(spec, "affinity", affinity, at_affinity)


def _merge_required(node: JsonDict, wanted: list[JsonDict], ops: Recorder) -> bool:
    key = "requiredDuringSchedulingIgnoredDuringExecution"
    where = f"spec.affinity.nodeAffinity.{key}"
    selector = dict(_dict(node.get(key), where))
    at_selector = ops.enter(key, exists=node.get(key) is not None)
    terms = _list(selector.get("nodeSelectorTerms"), f"{where}.nodeSelectorTerms")
    if not terms:
        first = [{"matchExpressions": [copy_json(w) for w in wanted]}]
        at_selector.put(selector, "nodeSelectorTerms", first)
        ops.attach(node, key, selector, at_selector)
        return True
    at_terms = at_selector.enter("nodeSelectorTerms", exists=True)
    changed = False
    merged = list(terms)
    for i, raw in enumerate(terms):
        term = _dict(raw, f"{where}.nodeSelectorTerms[{i}]")
        # An empty term matches no node; adding requirements would make it match GPU nodes.
        if not term.get("matchExpressions") and not term.get("matchFields"):
            continue
        new_term = dict(term)
        if _append_missing(
            new_term,
            "matchExpressions",
            wanted,
            where=f"{where}.nodeSelectorTerms[{i}].matchExpressions",
            ops=at_terms.enter(i, exists=True),
        ):
            changed = True
            merged[i] = new_term
    if changed:
        selector["nodeSelectorTerms"] = merged  # its changed terms recorded themselves
        ops.attach(node, key, selector, at_selector)
    return changed


def _append_missing(holder: JsonDict, key: str, wanted: Any, *, where: str, ops: Recorder) -> bool:
    """Append the items of `wanted` that `holder[key]` lacks; True if anything was added."""
    current = _list(holder.get(key), where)
    missing = [item for item in wanted if item not in current]
    if missing:
        ops.extend(holder, key, current, [copy_json(item) for item in missing])
    return bool(missing)


# -- readiness gate and containers -----------------------------------------------------------------


def _add_readiness_gate(spec: JsonDict, ops: Recorder) -> None:
    gates = _list(spec.get("readinessGates"), "spec.readinessGates")
    for i, gate in enumerate(gates):
        if (
            _dict(gate, f"spec.readinessGates[{i}]").get("conditionType")
            == names.GPU_READY_CONDITION
        ):
            return
    ops.extend(spec, "readinessGates", gates, [{"conditionType": names.GPU_READY_CONDITION}])


def visible_devices_env(env_name: str) -> JsonDict:
    """The env var the kubelet fills from the extender's assigned-gpus annotation at start."""
    path = f"metadata.annotations['{names.ASSIGNED_GPUS_ANNOTATION}']"
    return {"name": env_name, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}}


def uses_gpus(container: Mapping[str, Any]) -> bool:
    resources = container.get("resources")
    if not isinstance(resources, Mapping):
        return False
    return any(
        isinstance(resources.get(kind), Mapping) and names.GPU_RESOURCE in resources[kind]
        for kind in ("limits", "requests")
    )


def _add_visible_devices(spec: JsonDict, env_name: str, ops: Recorder) -> None:
    """Shared-mode pods get their GPUs from the annotation, not the device plugin. The containers
    that ask for `nvidia.com/gpu` get the variable; when none does (the usual shared-mode pod),
    every app container does. A container that sets the variable itself keeps its own value."""
    containers = _list(spec.get("containers"), "spec.containers")
    checked = [_dict(c, f"spec.containers[{i}]") for i, c in enumerate(containers)]
    targets = {i for i, c in enumerate(checked) if uses_gpus(c)} or set(range(len(checked)))
    at_containers = ops.enter("containers", exists=True)  # only read when it has containers
    new_containers: list[Any] = list(containers)
    changed = False
    for i in sorted(targets):
        env = _list(checked[i].get("env"), f"spec.containers[{i}].env")
        named = [_dict(e, f"spec.containers[{i}].env[{j}]").get("name") for j, e in enumerate(env)]
        if env_name not in named:
            container = dict(checked[i])
            at_container = at_containers.enter(i, exists=containers[i] is not None)
            at_container.extend(container, "env", env, [visible_devices_env(env_name)])
            at_containers.attach_item(new_containers, i, container, at_container)
            changed = True
    if changed:
        spec["containers"] = new_containers  # its changed containers recorded themselves


# -- shape checks: absent or null is empty, anything else of the wrong type an error ---------------


def _dict(value: object, field: str) -> Mapping[str, Any]:
    return read_optional_mapping(value, field, show=None, error=MutationError)


def _list(value: object, field: str) -> list[Any]:
    return read_optional_list(value, field, show=None, error=MutationError)
