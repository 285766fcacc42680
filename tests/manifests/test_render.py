"""`kubectl apply -k manifests/` as a user runs it: the kustomization renders with a current
kustomize, every file under manifests/ is part of it, and every object it sends is valid against
the schema of the newest Kubernetes that `kubernetes-validate` knows (strict: no unknown fields)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_validate import utils as kv  # type: ignore[import-untyped]

from headroom import names
from tests.manifests.render import MANIFESTS, Obj, Rendered, object_id, render

# Objects a current cluster refuses, each with the change that fixes it. The test for such an
# object is expected to fail (strict xfail): once fixed it passes, and the entry must go.
KNOWN_INVALID: dict[str, str] = {}
# Objects outside headroom-system on purpose: the scheduler reads the API server's
# authentication configuration, which lives in kube-system.
OUTSIDE_NAMESPACE = {"RoleBinding kube-system/headroom-scheduler-authentication-reader"}
GENERATOR_INPUTS = ("configMapGenerator", "secretGenerator")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def kustomizations(directory: Path = MANIFESTS) -> list[Path]:
    """The kustomization files `kubectl apply -k manifests/` reads, root first."""
    found = [directory / "kustomization.yaml"]
    for entry in load_yaml(found[0]).get("resources", []):
        if (directory / entry).is_dir():
            found += kustomizations(directory / entry)
    return found


def referenced_files(kustomization: Path) -> list[Path]:
    """Resource files and generator inputs that a kustomization names (not directories)."""
    doc = load_yaml(kustomization)
    here = kustomization.parent
    files = [here / r for r in doc.get("resources", []) if not (here / r).is_dir()]
    for generator in (g for key in GENERATOR_INPUTS for g in doc.get(key, [])):
        for entry in generator.get("files", []):
            files.append(here / str(entry).split("=", 1)[-1])  # "key=path" or "path"
        for entry in generator.get("envs", []):
            files.append(here / entry)
    return files


def test_every_file_a_kustomization_names_exists() -> None:
    for kustomization in kustomizations():
        doc = load_yaml(kustomization)
        here = kustomization.parent
        for entry in doc.get("resources", []):
            target = here / entry
            assert target.is_file() or (target / "kustomization.yaml").is_file(), (
                f"{kustomization.relative_to(MANIFESTS)}: resource {entry} does not exist"
            )
        for path in referenced_files(kustomization):
            assert path.is_file(), (
                f"{kustomization.relative_to(MANIFESTS)}: "
                f"{path.relative_to(MANIFESTS)} does not exist"
            )


def test_every_manifest_file_is_installed() -> None:
    """A YAML file under manifests/ that no kustomization reaches would silently not be
    installed (examples/ are for users to apply themselves)."""
    reached = {p.resolve() for k in kustomizations() for p in (k, *referenced_files(k))}
    on_disk = {
        p.resolve() for p in MANIFESTS.rglob("*.yaml") if MANIFESTS / "examples" not in p.parents
    }
    assert sorted(str(p.relative_to(MANIFESTS)) for p in on_disk - reached) == []


def test_the_rendering_installs_into_headroom_system_without_duplicates() -> None:
    rendered = render()
    ids = Counter(object_id(o) for o in rendered)
    assert [i for i, n in ids.items() if n > 1] == []
    assert rendered[0] == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": names.SYSTEM_NAMESPACE,
            "labels": {"app.kubernetes.io/name": "headroom"},
        },
    }
    outside = {
        object_id(o)
        for o in rendered
        if o["metadata"].get("namespace") not in (None, names.SYSTEM_NAMESPACE)
    }
    assert outside == OUTSIDE_NAMESPACE
    # Namespaced kinds all carry a namespace (a missing one would land in the user's current
    # namespace); the cluster-scoped ones carry none.
    cluster_scoped = {
        "Namespace",
        "CustomResourceDefinition",
        "ClusterRole",
        "ClusterRoleBinding",
        "MutatingWebhookConfiguration",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    }
    for obj in rendered:
        assert ("namespace" in obj["metadata"]) != (obj["kind"] in cluster_scoped), object_id(obj)
    kinds = Counter(o["kind"] for o in rendered)
    assert kinds["CustomResourceDefinition"] == 2
    assert {"Deployment": 2, "DaemonSet": 1}.items() <= kinds.items()


def test_the_crds_come_before_anything_else_but_the_namespace() -> None:
    kinds = [o["kind"] for o in render()]
    assert kinds[:3] == ["Namespace", "CustomResourceDefinition", "CustomResourceDefinition"]


def schema_version() -> str:
    """The newest Kubernetes whose schemas kubernetes-validate ships."""
    version: str = kv.latest_version()
    return version


def test_the_schemas_are_those_of_a_current_kubernetes() -> None:
    major, minor = (int(p) for p in schema_version().split(".")[:2])
    assert (major, minor) >= (1, 31)


@pytest.mark.parametrize(
    "obj",
    [
        pytest.param(
            o,
            id=object_id(o),
            marks=(
                [pytest.mark.xfail(strict=True, reason=KNOWN_INVALID[object_id(o)])]
                if object_id(o) in KNOWN_INVALID
                else []
            ),
        )
        for o in render()
    ],
)
def test_each_object_is_valid_for_current_kubernetes(obj: Obj) -> None:
    try:
        kv.validate(obj, schema_version(), strict=True)
    except kv.SchemaNotFoundError as exc:
        pytest.fail(f"{object_id(obj)}: {exc.message}")
    except kv.ValidationError as exc:
        where = ".".join(str(p) for p in exc.absolute_path)
        pytest.fail(f"{object_id(obj)}: {where}: {exc.message}")


def test_the_validator_refuses_what_a_cluster_refuses() -> None:
    """The check above can fail: a typo in a field and a removed API are both caught."""
    deployment = Rendered(tuple(render())).of_kind("Deployment")[0]
    typo = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    with pytest.raises(kv.ValidationError):
        kv.validate(typo, schema_version(), strict=True)
    with pytest.raises(kv.SchemaNotFoundError):
        kv.validate(
            {"apiVersion": "extensions/v1beta1", "kind": "Deployment", "metadata": {"name": "x"}},
            schema_version(),
            strict=True,
        )
