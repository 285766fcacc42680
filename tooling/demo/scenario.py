"""The demo's scenario file: simulated nodes, the model and its AIScaler, other GPU workloads, and
the load timeline. `load(path)` reads and validates one; every error names the field and the
expected form (`ScenarioError`). Pure: YAML in, frozen dataclasses out.

Format (camelCase keys, unknown keys refused; `scenarios/default.yaml` is a commented example):
`name`, `namespace`; `nodes` (groups of identical nodes `{name, count, gpus, product,
gpuMemory, outside: [{name, gpu, memory}], lostGpus, dra, draShared}`, named NAME-1.. or NAME
when count is 1; `outside` is memory held by a process outside Kubernetes, a lost GPU answers
GPU_IS_LOST; `dra: true` publishes the GPUs as a ResourceSlice instead of the device plugin's
`nvidia.com/gpu`, `draShared: true` with consumable memory); `model` `{name, gpuMemory, gpus,
sharing, replicas}`; `scaler` `{name, targetValue, minReplicas, maxReplicas, spec}` (merged onto
the seed AIScaler; `spec` may add pollingInterval, behavior, feasibility); `workloads` (unrelated
GPU Jobs `{name, parallelism, gpuMemory, gpus, sharing, product, claim}`; `claim: {count, memory}`
gives each pod a ResourceClaim from a template instead of `nvidia.com/gpu`); `timeline` (phases
`{phase, load, actions, until, seconds, timeoutSeconds}`); `expect` `{capReached, capLifted}`.

Actions: `endOutside` (an outside process ends), `finish` (a workload's pods complete), `start`
(a workload starts then rather than at the beginning).

`until`: `seconds` (hold the phase `seconds`), `capped` (the scaler limited by GPU headroom, its
replicas running), `lifted` (replicas above that cap, running), `settled` (the replicas the load
asks for, all Ready). For the others, `seconds` is how long to hold once the condition holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tooling.demo.model import (
    Action,
    Claim,
    Expectations,
    GpuAsk,
    Model,
    NodeGroup,
    OutsideProcess,
    Phase,
    Scaler,
    Scenario,
    Workload,
)
from tooling.demo.scenariofields import (
    ScenarioError,
    read_bool,
    read_bytes,
    read_int,
    read_known,
    read_list,
    read_name,
    read_number,
    read_object,
    read_string,
)

__all__ = ["SCENARIOS_DIR", "ScenarioError", "load", "parse"]

SCENARIOS_DIR = Path(__file__).parent / "scenarios"
UNTIL = ("seconds", "capped", "lifted", "settled")
ACTIONS = ("endOutside", "finish", "start")
SCALER_SPEC_KEYS = ("pollingInterval", "behavior", "feasibility")
NODE_KEYS = (
    "name",
    "count",
    "gpus",
    "product",
    "gpuMemory",
    "outside",
    "lostGpus",
    "dra",
    "draShared",
)


def load(path: Path) -> Scenario:
    """Read and validate a scenario file; ScenarioError names the field, OSError the file."""
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ScenarioError("(file)", f"not valid YAML: {exc}") from exc
    return parse(raw)


def parse(raw: object) -> Scenario:
    doc = read_object(raw, "(top level)")
    read_known(
        doc,
        "",
        (
            "name",
            "description",
            "namespace",
            "nodes",
            "model",
            "scaler",
            "workloads",
            "timeline",
            "expect",
        ),
    )
    nodes = tuple(
        _node_group(item, f"nodes[{i}]")
        for i, item in enumerate(read_list(doc, "nodes", "", required=True))
    )
    workloads = tuple(
        _workload(item, f"workloads[{i}]")
        for i, item in enumerate(read_list(doc, "workloads", "", required=False))
    )
    timeline = tuple(
        _phase(item, f"timeline[{i}]")
        for i, item in enumerate(read_list(doc, "timeline", "", required=True))
    )
    scenario = Scenario(
        name=read_name(doc, "name", ""),
        description=str(doc.get("description", "")),
        namespace=read_name(doc, "namespace", "", default="demo"),
        nodes=nodes,
        model=_model(doc.get("model"), "model"),
        scaler=_scaler(doc.get("scaler"), "scaler"),
        workloads=workloads,
        timeline=timeline,
        expect=_expect(doc.get("expect"), "expect"),
    )
    _check_references(scenario)
    return scenario


# -- sections ------------------------------------------------------------------------------------
def _node_group(raw: object, where: str) -> NodeGroup:
    doc = read_object(raw, where)
    read_known(doc, where, NODE_KEYS)
    gpus = read_int(doc, "gpus", where, minimum=1, maximum=16)
    outside = []
    for i, item in enumerate(read_list(doc, "outside", where, required=False)):
        spot = f"{where}.outside[{i}]"
        o = read_object(item, spot)
        read_known(o, spot, ("name", "gpu", "memory"))
        outside.append(
            OutsideProcess(
                read_name(o, "name", spot),
                read_int(o, "gpu", spot, minimum=0, maximum=gpus - 1),
                read_bytes(o, "memory", spot),
            )
        )
    lost = doc.get("lostGpus", [])
    if not isinstance(lost, list) or not all(
        isinstance(g, int) and not isinstance(g, bool) and 0 <= g < gpus for g in lost
    ):
        raise ScenarioError(
            f"{where}.lostGpus", f"expected a list of GPU indexes 0..{gpus - 1} (got {lost!r})"
        )
    group = NodeGroup(
        name=read_name(doc, "name", where),
        count=read_int(doc, "count", where, minimum=1, maximum=20, default=1),
        gpus=gpus,
        product=read_string(doc, "product", where),
        gpu_memory_bytes=read_bytes(doc, "gpuMemory", where),
        outside=tuple(outside),
        lost_gpus=tuple(lost),
        dra=read_bool(doc, "dra", where, default=False),
        dra_shared=read_bool(doc, "draShared", where, default=False),
    )
    if group.dra_shared and not group.dra:
        raise ScenarioError(
            f"{where}.draShared",
            "only with dra: true (how a DRA pool publishes its GPUs: shared by consumable memory)",
        )
    for i, held in enumerate(group.outside):
        if held.memory_bytes > group.gpu_memory_bytes:
            raise ScenarioError(
                f"{where}.outside[{i}].memory", f"more than the GPU holds ({doc.get('gpuMemory')})"
            )
    if group.outside and group.count != 1:
        raise ScenarioError(
            f"{where}.outside",
            "only on a group of one node (count: 1), so the timeline can name the process",
        )
    return group


def _ask(doc: Mapping[str, Any], where: str) -> GpuAsk:
    memory = doc.get("gpuMemory")
    return GpuAsk(
        memory=str(memory),
        memory_bytes=read_bytes(doc, "gpuMemory", where),
        gpus=read_int(doc, "gpus", where, minimum=1, maximum=16, default=1),
        sharing=read_bool(doc, "sharing", where, default=False),
    )


def _claim_ask(doc: Mapping[str, Any], where: str) -> tuple[GpuAsk, Claim]:
    """A workload whose GPUs come from a claim: `gpus` and `sharing` belong to the claim, and
    `gpuMemory` (the annotation) is optional."""
    for key, instead in (("gpus", "claim.count"), ("sharing", "claim.memory")):
        if key in doc:
            raise ScenarioError(
                f"{where}.{key}",
                f"not with claim: a claim pod's GPUs come from its ResourceClaim (use {instead})",
            )
    spot = f"{where}.claim"
    raw = read_object(doc.get("claim"), spot)
    read_known(raw, spot, ("count", "memory"))
    if not raw:
        raise ScenarioError(spot, "expected {count: N} (whole GPUs) or {memory: 20Gi} (a share)")
    claim = Claim(
        count=read_int(raw, "count", spot, minimum=1, maximum=16, default=1),
        memory=str(raw["memory"]) if "memory" in raw else "",
        memory_bytes=read_bytes(raw, "memory", spot) if "memory" in raw else 0,
    )
    memory = doc.get("gpuMemory")
    ask = GpuAsk(
        memory="" if memory is None else str(memory),
        memory_bytes=0 if memory is None else read_bytes(doc, "gpuMemory", where),
        gpus=claim.count,
        sharing=False,
    )
    return ask, claim


def _model(raw: object, where: str) -> Model:
    doc = read_object(raw, where)
    read_known(doc, where, ("name", "gpuMemory", "gpus", "sharing", "replicas"))
    return Model(
        name=read_name(doc, "name", where),
        ask=_ask(doc, where),
        replicas=read_int(doc, "replicas", where, minimum=1, maximum=100, default=1),
    )


def _scaler(raw: object, where: str) -> Scaler:
    doc = read_object(raw, where)
    read_known(doc, where, ("name", "targetValue", "minReplicas", "maxReplicas", "spec"))
    target = doc.get("targetValue")
    if isinstance(target, bool) or not isinstance(target, int | float) or not target > 0:
        raise ScenarioError(
            f"{where}.targetValue",
            f"expected a number > 0: the queue one replica should carry (got {target!r})",
        )
    spec = read_object(doc.get("spec", {}), f"{where}.spec")
    read_known(spec, f"{where}.spec", SCALER_SPEC_KEYS)
    scaler = Scaler(
        name=read_name(doc, "name", where),
        target_value=float(target),
        min_replicas=read_int(doc, "minReplicas", where, minimum=1, maximum=100),
        max_replicas=read_int(doc, "maxReplicas", where, minimum=1, maximum=100),
        spec=dict(spec),
    )
    if scaler.min_replicas > scaler.max_replicas:
        raise ScenarioError(
            f"{where}.minReplicas",
            f"must not exceed maxReplicas ({scaler.max_replicas}) (got {scaler.min_replicas})",
        )
    return scaler


def _workload(raw: object, where: str) -> Workload:
    doc = read_object(raw, where)
    read_known(
        doc, where, ("name", "parallelism", "gpuMemory", "gpus", "sharing", "product", "claim")
    )
    claim = None
    if "claim" in doc:
        if "product" in doc:
            raise ScenarioError(
                f"{where}.product",
                "not with claim: the DRA allocator places claim pods on the nodes whose "
                "ResourceSlices have the GPUs, and DRA nodes carry no GPU feature discovery labels",
            )
        ask, claim = _claim_ask(doc, where)
    else:
        ask = _ask(doc, where)
    return Workload(
        name=read_name(doc, "name", where),
        parallelism=read_int(doc, "parallelism", where, minimum=1, maximum=20, default=1),
        ask=ask,
        product=read_string(doc, "product", where) if "product" in doc else None,
        claim=claim,
    )


def _phase(raw: object, where: str) -> Phase:
    doc = read_object(raw, where)
    read_known(doc, where, ("phase", "load", "actions", "until", "seconds", "timeoutSeconds"))
    load = doc.get("load")
    if load is not None and (
        isinstance(load, bool) or not isinstance(load, int | float) or not 0 <= load < 1e6
    ):
        raise ScenarioError(
            f"{where}.load", f"expected the total queue depth, a number >= 0 (got {load!r})"
        )
    actions = []
    for i, item in enumerate(read_list(doc, "actions", where, required=False)):
        spot = f"{where}.actions[{i}]"
        action = read_object(item, spot)
        if len(action) != 1 or next(iter(action)) not in ACTIONS:
            raise ScenarioError(
                spot,
                f"expected one of {{endOutside: NAME}} (an outside "
                f"process ends), {{finish: NAME}} (a workload's pods complete) "
                f"or {{start: NAME}} (a workload starts) (got {item!r})",
            )
        kind = str(next(iter(action)))
        actions.append(Action(kind, read_name(action, kind, spot)))
    until = doc.get("until", "seconds")
    if until not in UNTIL:
        raise ScenarioError(f"{where}.until", f"must be one of {', '.join(UNTIL)} (got {until!r})")
    seconds = read_number(doc, "seconds", where, default=0.0 if until != "seconds" else None)
    return Phase(
        name=read_name(doc, "phase", where),
        load=None if load is None else float(load),
        actions=tuple(actions),
        until=str(until),
        seconds=seconds,
        timeout_seconds=read_number(doc, "timeoutSeconds", where, default=120.0),
    )


def _expect(raw: object, where: str) -> Expectations:
    doc = read_object(raw if raw is not None else {}, where)
    read_known(doc, where, ("capReached", "capLifted"))
    return Expectations(
        cap_reached=read_bool(doc, "capReached", where, default=True),
        cap_lifted=read_bool(doc, "capLifted", where, default=True),
    )


def _check_references(scenario: Scenario) -> None:
    nodes = scenario.node_names()
    if len(set(nodes)) != len(nodes):
        raise ScenarioError("nodes", f"node names must be unique (got {', '.join(nodes)})")
    outside = [o.name for g in scenario.nodes for o in g.outside]
    if len(set(outside)) != len(outside):
        raise ScenarioError("nodes", "outside process names must be unique")
    names = [w.name for w in scenario.workloads] + [scenario.model.name]
    if len(set(names)) != len(names):
        raise ScenarioError(
            "workloads", "workload names must differ from each other and from model.name"
        )
    _check_claims(scenario)
    products = {g.product for g in scenario.nodes if not g.dra}
    for i, w in enumerate(scenario.workloads):
        if w.product is not None and w.product not in products:
            raise ScenarioError(
                f"workloads[{i}].product",
                f"no node has GPU {w.product!r} labelled (known: {', '.join(sorted(products))}; "
                "DRA nodes carry no product label)",
            )
    phases = [p.name for p in scenario.timeline]
    if len(set(phases)) != len(phases):
        raise ScenarioError("timeline", "phase names must be unique")
    for i, phase in enumerate(scenario.timeline):
        for j, action in enumerate(phase.actions):
            known = outside if action.kind == "endOutside" else names[:-1]
            if action.target not in known:
                what = "outside process" if action.kind == "endOutside" else "workload"
                raise ScenarioError(
                    f"timeline[{i}].actions[{j}].{action.kind}",
                    f"no {what} named {action.target!r} (known: {', '.join(known) or 'none'})",
                )


def _check_claims(scenario: Scenario) -> None:
    """Each claim can be met by some DRA pool: enough GPUs, and shared ones for a memory share."""
    pools = [g for g in scenario.nodes if g.dra]
    for i, w in enumerate(scenario.workloads):
        if w.claim is None:
            continue
        where = f"workloads[{i}].claim"
        fitting = [g for g in pools if g.gpus >= w.claim.count]
        if not fitting:
            raise ScenarioError(
                f"{where}.count" if pools else where,
                f"no node group with dra: true has {w.claim.count} GPU(s)"
                + ("" if pools else " (none has dra: true)"),
            )
        if w.claim.memory_bytes and not any(
            g.dra_shared and g.gpu_memory_bytes >= w.claim.memory_bytes for g in fitting
        ):
            raise ScenarioError(
                f"{where}.memory",
                f"a share of {w.claim.memory} needs a node group with draShared: true whose "
                "GPUs hold it",
            )
