"""The demo's scenario file: simulated nodes, the model and its AIScaler, other GPU workloads, and
the load timeline. `load(path)` reads and validates one; every error names the field and the
expected form (`ScenarioError`). Pure: YAML in, frozen dataclasses out.

Format (camelCase keys, unknown keys refused; `scenarios/default.yaml` is a commented example):
`name`, `namespace`; `nodes` (groups of identical nodes `{name, count, gpus, product,
gpuMemory, outside: [{name, gpu, memory}], lostGpus}`, named NAME-1.. or NAME when count is 1;
`outside` is memory held by a process outside Kubernetes, a lost GPU answers GPU_IS_LOST);
`model` `{name, gpuMemory, gpus, sharing, replicas}`; `scaler` `{name, targetValue, minReplicas,
maxReplicas, spec}` (merged onto the seed AIScaler; `spec` may add pollingInterval, behavior,
feasibility); `workloads` (unrelated GPU Jobs `{name, parallelism, gpuMemory, gpus, sharing,
product}`); `timeline` (phases `{phase, load, actions, until, seconds, timeoutSeconds}`);
`expect` `{capReached, capLifted}`.

Actions: `endOutside` (an outside process ends), `finish` (a workload's pods complete), `start`
(a workload starts then rather than at the beginning).

`until`: `seconds` (hold the phase `seconds`), `capped` (the scaler limited by GPU headroom, its
replicas running), `lifted` (replicas above that cap, running), `settled` (the replicas the load
asks for, all Ready). For the others, `seconds` is how long to hold once the condition holds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from headroom import fields
from headroom.fields import FieldError
from headroom.quantity import QuantityError, parse_bytes
from tooling.demo.model import (
    Action,
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

SCENARIOS_DIR = Path(__file__).parent / "scenarios"
UNTIL = ("seconds", "capped", "lifted", "settled")
ACTIONS = ("endOutside", "finish", "start")
SCALER_SPEC_KEYS = ("pollingInterval", "behavior", "feasibility")
_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


class ScenarioError(FieldError):
    """A scenario that cannot run; `field` is the path of the offending field."""


def load(path: Path) -> Scenario:
    """Read and validate a scenario file; ScenarioError names the field, OSError the file."""
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ScenarioError("(file)", f"not valid YAML: {exc}") from exc
    return parse(raw)


def parse(raw: object) -> Scenario:
    doc = _object(raw, "(top level)")
    _known(
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
        for i, item in enumerate(_list(doc, "nodes", "", required=True))
    )
    workloads = tuple(
        _workload(item, f"workloads[{i}]")
        for i, item in enumerate(_list(doc, "workloads", "", required=False))
    )
    timeline = tuple(
        _phase(item, f"timeline[{i}]")
        for i, item in enumerate(_list(doc, "timeline", "", required=True))
    )
    scenario = Scenario(
        name=_name(doc, "name", ""),
        description=str(doc.get("description", "")),
        namespace=_name(doc, "namespace", "", default="demo"),
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
    doc = _object(raw, where)
    _known(doc, where, ("name", "count", "gpus", "product", "gpuMemory", "outside", "lostGpus"))
    gpus = _int(doc, "gpus", where, minimum=1, maximum=16)
    outside = []
    for i, item in enumerate(_list(doc, "outside", where, required=False)):
        spot = f"{where}.outside[{i}]"
        o = _object(item, spot)
        _known(o, spot, ("name", "gpu", "memory"))
        outside.append(
            OutsideProcess(
                _name(o, "name", spot),
                _int(o, "gpu", spot, minimum=0, maximum=gpus - 1),
                _bytes(o, "memory", spot),
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
        name=_name(doc, "name", where),
        count=_int(doc, "count", where, minimum=1, maximum=20, default=1),
        gpus=gpus,
        product=_string(doc, "product", where),
        gpu_memory_bytes=_bytes(doc, "gpuMemory", where),
        outside=tuple(outside),
        lost_gpus=tuple(lost),
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
        memory_bytes=_bytes(doc, "gpuMemory", where),
        gpus=_int(doc, "gpus", where, minimum=1, maximum=16, default=1),
        sharing=_bool(doc, "sharing", where, default=False),
    )


def _model(raw: object, where: str) -> Model:
    doc = _object(raw, where)
    _known(doc, where, ("name", "gpuMemory", "gpus", "sharing", "replicas"))
    return Model(
        name=_name(doc, "name", where),
        ask=_ask(doc, where),
        replicas=_int(doc, "replicas", where, minimum=1, maximum=100, default=1),
    )


def _scaler(raw: object, where: str) -> Scaler:
    doc = _object(raw, where)
    _known(doc, where, ("name", "targetValue", "minReplicas", "maxReplicas", "spec"))
    target = doc.get("targetValue")
    if isinstance(target, bool) or not isinstance(target, int | float) or not target > 0:
        raise ScenarioError(
            f"{where}.targetValue",
            f"expected a number > 0: the queue one replica should carry (got {target!r})",
        )
    spec = _object(doc.get("spec", {}), f"{where}.spec")
    _known(spec, f"{where}.spec", SCALER_SPEC_KEYS)
    scaler = Scaler(
        name=_name(doc, "name", where),
        target_value=float(target),
        min_replicas=_int(doc, "minReplicas", where, minimum=1, maximum=100),
        max_replicas=_int(doc, "maxReplicas", where, minimum=1, maximum=100),
        spec=dict(spec),
    )
    if scaler.min_replicas > scaler.max_replicas:
        raise ScenarioError(
            f"{where}.minReplicas",
            f"must not exceed maxReplicas ({scaler.max_replicas}) (got {scaler.min_replicas})",
        )
    return scaler


def _workload(raw: object, where: str) -> Workload:
    doc = _object(raw, where)
    _known(doc, where, ("name", "parallelism", "gpuMemory", "gpus", "sharing", "product"))
    return Workload(
        name=_name(doc, "name", where),
        parallelism=_int(doc, "parallelism", where, minimum=1, maximum=20, default=1),
        ask=_ask(doc, where),
        product=_string(doc, "product", where) if "product" in doc else None,
    )


def _phase(raw: object, where: str) -> Phase:
    doc = _object(raw, where)
    _known(doc, where, ("phase", "load", "actions", "until", "seconds", "timeoutSeconds"))
    load = doc.get("load")
    if load is not None and (
        isinstance(load, bool) or not isinstance(load, int | float) or not 0 <= load < 1e6
    ):
        raise ScenarioError(
            f"{where}.load", f"expected the total queue depth, a number >= 0 (got {load!r})"
        )
    actions = []
    for i, item in enumerate(_list(doc, "actions", where, required=False)):
        spot = f"{where}.actions[{i}]"
        action = _object(item, spot)
        if len(action) != 1 or next(iter(action)) not in ACTIONS:
            raise ScenarioError(
                spot,
                f"expected one of {{endOutside: NAME}} (an outside "
                f"process ends), {{finish: NAME}} (a workload's pods complete) "
                f"or {{start: NAME}} (a workload starts) (got {item!r})",
            )
        kind = str(next(iter(action)))
        actions.append(Action(kind, _name(action, kind, spot)))
    until = doc.get("until", "seconds")
    if until not in UNTIL:
        raise ScenarioError(f"{where}.until", f"must be one of {', '.join(UNTIL)} (got {until!r})")
    seconds = _number(doc, "seconds", where, default=0.0 if until != "seconds" else None)
    return Phase(
        name=_name(doc, "phase", where),
        load=None if load is None else float(load),
        actions=tuple(actions),
        until=str(until),
        seconds=seconds,
        timeout_seconds=_number(doc, "timeoutSeconds", where, default=120.0),
    )


def _expect(raw: object, where: str) -> Expectations:
    doc = _object(raw if raw is not None else {}, where)
    _known(doc, where, ("capReached", "capLifted"))
    return Expectations(
        cap_reached=_bool(doc, "capReached", where, default=True),
        cap_lifted=_bool(doc, "capLifted", where, default=True),
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
    products = {g.product for g in scenario.nodes}
    for i, w in enumerate(scenario.workloads):
        if w.product is not None and w.product not in products:
            raise ScenarioError(
                f"workloads[{i}].product",
                f"no node has GPU {w.product!r} (known: {', '.join(sorted(products))})",
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


# -- field readers: headroom.fields, raising ScenarioError ----------------------------------------
def _object(value: object, where: str) -> Mapping[str, Any]:
    return fields.read_mapping(value, where, expected="a mapping", error=ScenarioError)


def _known(doc: Mapping[str, Any], where: str, keys: Sequence[str]) -> None:
    for key in doc:
        if key not in keys:
            spot = f"{where}.{key}" if where else str(key)
            raise ScenarioError(spot, f"unknown field; expected one of {', '.join(keys)}")


def _list(doc: Mapping[str, Any], key: str, where: str, *, required: bool) -> list[Any]:
    spot = f"{where}.{key}" if where else key
    value = doc.get(key)
    if value is None and not required:
        return []
    if not isinstance(value, list) or (required and not value):
        fields.fail(
            value,
            spot,
            expected="a non-empty list" if required else "a list",
            show=None,
            error=ScenarioError,
        )
    return value


def _name(doc: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
    spot = f"{where}.{key}" if where else key
    value = doc.get(key, default)
    if not isinstance(value, str) or len(value) > 40 or not _NAME.fullmatch(value):
        fields.fail(
            value,
            spot,
            expected="a name of lower-case letters, digits and '-' (at most 40)",
            error=ScenarioError,
        )
    return value


def _string(doc: Mapping[str, Any], key: str, where: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value.strip():  # blank counts as empty
        fields.fail(value, f"{where}.{key}", expected="a non-empty string", error=ScenarioError)
    return value


def _int(
    doc: Mapping[str, Any],
    key: str,
    where: str,
    *,
    minimum: int,
    maximum: int,
    default: int | None = None,
) -> int:
    return fields.read_int(
        doc.get(key, default),
        f"{where}.{key}",
        minimum=minimum,
        maximum=maximum,
        expected=f"an integer {minimum}..{maximum}",
        error=ScenarioError,
    )


def _number(doc: Mapping[str, Any], key: str, where: str, *, default: float | None) -> float:
    value = doc.get(key, default)
    seconds = fields.read_number(
        value, f"{where}.{key}", expected="seconds, a number 0..3600", error=ScenarioError
    )
    if not 0 <= seconds <= 3600:
        fields.fail(
            value, f"{where}.{key}", expected="seconds, a number 0..3600", error=ScenarioError
        )
    return seconds


def _bool(doc: Mapping[str, Any], key: str, where: str, *, default: bool) -> bool:
    return fields.read_bool(doc.get(key, default), f"{where}.{key}", error=ScenarioError)


def _bytes(doc: Mapping[str, Any], key: str, where: str) -> int:
    spot = f"{where}.{key}"
    if key not in doc:
        raise ScenarioError(spot, 'required: a Kubernetes quantity of bytes such as "40Gi"')
    try:
        value = parse_bytes(doc.get(key), field=spot)
    except QuantityError as exc:
        raise ScenarioError(spot, str(exc).removeprefix(f"{spot}: ")) from exc
    if value <= 0:
        raise ScenarioError(spot, f"expected a quantity above 0 (got {doc.get(key)!r})")
    return value
