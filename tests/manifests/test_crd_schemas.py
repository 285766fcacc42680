"""The CRDs' schemas, checked without a cluster: structural (as a current API server demands),
every printer column names a declared field, the examples validate, and what the node agent and
the scaler write as status is valid and would not be pruned (an undeclared field is dropped
silently by the API server)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml

from extender.scaler.report import blocked_status, with_transitions
from headroom import names
from headroom.report import GpuPod, GpuState, NodeReport, report_to_status
from tests.manifests.render import MANIFESTS, Obj
from tests.manifests.scaler_round import limited_round_status, seed_scaler

CRDS = {
    names.GPUNODE_KIND: MANIFESTS / "crds" / "gpunodes.yaml",
    names.AISCALER_KIND: MANIFESTS / "crds" / "aiscalers.yaml",
}
JUNCTORS = ("allOf", "anyOf", "oneOf", "not")
FORBIDDEN_IN_JUNCTORS = {"type", "additionalProperties", "description", "default", "nullable"}
GI = 2**30


def crd(kind: str) -> Obj:
    doc: Obj = yaml.safe_load(CRDS[kind].read_text())
    return doc


def version(kind: str) -> Obj:
    (served,) = crd(kind)["spec"]["versions"]
    assert served["name"] == names.API_VERSION
    return dict(served)


def schema(kind: str) -> Obj:
    found: Obj = version(kind)["schema"]["openAPIV3Schema"]
    return found


def walk(node: Obj, path: str) -> Iterator[tuple[str, Obj]]:
    """Every schema node with its path, junctor branches included."""
    yield path, node
    for key, child in node.get("properties", {}).items():
        yield from walk(child, f"{path}.{key}")
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")
    for junctor in JUNCTORS:
        branches = node.get(junctor, [])
        for i, branch in enumerate(branches if isinstance(branches, list) else [branches]):
            yield from walk(branch, f"{path}.{junctor}[{i}]")


@pytest.mark.parametrize("kind", list(CRDS))
def test_the_schema_is_structural(kind: str) -> None:
    for path, node in walk(schema(kind), "openAPIV3Schema"):
        in_junctor = any(f".{j}[" in path for j in JUNCTORS)
        if in_junctor:
            assert not FORBIDDEN_IN_JUNCTORS & set(node), f"{path}: {set(node)}"
            assert not any(k.startswith("x-kubernetes-") for k in node), path
            continue
        untyped_ok = node.get("x-kubernetes-preserve-unknown-fields") or node.get(
            "x-kubernetes-int-or-string"
        )
        assert node.get("type") or untyped_ok, f"{path}: no type"
        if node.get("type") == "array":
            assert isinstance(node.get("items"), dict), f"{path}: an array needs items"


def resolve(root: Obj, json_path: str) -> Obj | None:
    """The schema node a printer column's JSONPath reads, or None when it is undeclared.
    Indexes and filters (`[0]`, `[?(@.type=="X")]`) step into an array's items."""
    node: Obj | None = root
    for part in re.findall(r"\.([A-Za-z0-9_]+)|(\[[^\]]*\])", json_path):
        if node is None:
            return None
        field, index = part
        if index:
            node = node.get("items") if node.get("type") == "array" else None
        elif field == "creationTimestamp" and node is root.get("properties", {}).get("metadata"):
            node = {"type": "string", "format": "date-time"}  # metadata is the API server's
        else:
            node = node.get("properties", {}).get(field)
    return node


@pytest.mark.parametrize("kind", list(CRDS))
def test_every_printer_column_reads_a_declared_field_of_its_type(kind: str) -> None:
    columns = version(kind)["additionalPrinterColumns"]
    assert columns
    expected_types = {
        "integer": {"integer"},
        "string": {"string"},
        "number": {"number"},
        "boolean": {"boolean"},
        "date": {"string"},
    }
    for column in columns:
        node = resolve(schema(kind), column["jsonPath"])
        assert node is not None, (
            f"{kind} column {column['name']}: {column['jsonPath']} is "
            "not in the schema (it would always be empty)"
        )
        assert node.get("type") in expected_types[column["type"]], column["name"]


def test_the_resolver_notices_a_misspelt_column() -> None:
    assert resolve(schema(names.GPUNODE_KIND), ".status.largestFree") is not None
    assert resolve(schema(names.GPUNODE_KIND), ".status.largestfree") is None
    assert resolve(schema(names.GPUNODE_KIND), ".status.gpus[0].modell") is None


def validate(kind: str, obj: Obj) -> None:
    jsonschema.Draft4Validator(schema(kind)).validate(obj)


def undeclared(node: Obj, value: Any, path: str) -> Iterator[str]:
    """Paths in `value` that the API server would prune under the schema `node`."""
    if node.get("x-kubernetes-preserve-unknown-fields"):
        return
    if isinstance(value, dict) and node.get("type") == "object":
        properties = node.get("properties", {})
        for key, child in value.items():
            if key in properties:
                yield from undeclared(properties[key], child, f"{path}.{key}")
            elif not node.get("additionalProperties"):
                yield f"{path}.{key}"
    elif isinstance(value, list) and node.get("type") == "array":
        for i, child in enumerate(value):
            yield from undeclared(node["items"], child, f"{path}[{i}]")


def status_schema(kind: str) -> Obj:
    found: Obj = schema(kind)["properties"]["status"]
    return found


def every_field_report() -> NodeReport:
    return NodeReport(
        node_name="n1",
        reported_at_unix_seconds=1_700_000_000.0,
        gpus=(
            GpuState(
                index=0,
                uuid="GPU-a",
                model="NVIDIA A100-SXM4-80GB",
                total_bytes=80 * GI,
                used_bytes=30 * GI,
                pods=(GpuPod("uid-1", 20 * GI, "ml", "llm-0"),),
                unattributed_bytes=10 * GI,
                utilization_percent=55.0,
                memory_utilization_percent=40.0,
                temperature_celsius=61.0,
                power_watts=250.5,
                mig_enabled=False,
            ),
            GpuState(
                index=1,
                uuid="GPU-b",
                model="NVIDIA A100-SXM4-80GB",
                total_bytes=80 * GI,
                used_bytes=0,
                healthy=False,
                reason="GPU is lost",
            ),
        ),
    )


def test_the_node_agents_status_is_valid_and_kept_whole() -> None:
    status = report_to_status(every_field_report())
    validate(
        names.GPUNODE_KIND,
        {
            "apiVersion": names.GROUP_VERSION,
            "kind": "GPUNode",
            "metadata": {"name": "n1"},
            "status": status,
        },
    )
    assert list(undeclared(status_schema(names.GPUNODE_KIND), status, "status")) == []
    # The check can fail: a field the schema does not declare is found.
    assert list(
        undeclared(status_schema(names.GPUNODE_KIND), {**status, "extra": 1}, "status")
    ) == ["status.extra"]


def scaler_statuses() -> dict[str, Obj]:
    now = time.time()
    limited = limited_round_status(seed_scaler("ml"), now)
    blocked = blocked_status(
        "InvalidSpec", "spec.maxReplicas: required", generation=3, previous=limited
    )
    return {"limited": limited, "blocked": with_transitions(blocked, limited, now_unix_seconds=now)}


@pytest.mark.parametrize("which", ["limited", "blocked"])
def test_the_scalers_status_is_valid_and_kept_whole(which: str) -> None:
    status = scaler_statuses()[which]
    validate(names.AISCALER_KIND, {**seed_scaler("ml"), "status": status})
    assert list(undeclared(status_schema(names.AISCALER_KIND), status, "status")) == []


def example_files() -> list[Path]:
    return sorted((MANIFESTS / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.name)
def test_every_example_is_valid_against_its_crd(path: Path) -> None:
    for obj in (d for d in yaml.safe_load_all(path.read_text()) if d):
        assert obj["apiVersion"] == names.GROUP_VERSION
        validate(obj["kind"], obj)
        assert list(undeclared(schema(obj["kind"]), {"spec": obj["spec"]}, "")) == []


# The cross-field rules (a scale target, min <= max, a target per metric) are CEL, which only an
# API server evaluates: tests/e2e/test_crds.py checks them there.
@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"targetValue": None}, "is not valid under any of the given schemas"),
        ({"minReplicas": -1}, "-1 is less than the minimum of 0"),
        ({"targetValue": 0}, "less than or equal to the minimum of 0"),
    ],
)
def test_a_broken_seed_is_refused(change: dict[str, Any], words: str) -> None:
    seed = yaml.safe_load((MANIFESTS / "examples" / "seed-aiscaler.yaml").read_text())
    spec = {k: v for k, v in {**seed["spec"], **change}.items() if v is not None}
    with pytest.raises(jsonschema.ValidationError, match=re.escape(words)):
        validate(names.AISCALER_KIND, {**seed, "spec": spec})
