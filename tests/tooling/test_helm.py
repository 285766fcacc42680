"""The helm build and how tests find its binary: the version comes from tooling/helm/versions.env
(the environment overrides it), a malformed version or one the Go proxy does not serve is refused
naming HELM_VERSION before anything is built, a cache with the binary is used as it is, and a
machine without one is told to run `make helm`."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tooling.helm import BUILD_SCRIPT, HelmMissing, helm_binary, helm_version, run_helm


def test_the_version_comes_from_the_file_and_the_environment_overrides_it() -> None:
    shipped = helm_version({})
    assert shipped.startswith("3.21.")
    assert helm_version({"HELM_VERSION": "3.20.2"}) == "3.20.2"


def build(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(BUILD_SCRIPT)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "HEADROOM_CACHE": str(tmp_path), **env},
    )


@pytest.mark.parametrize("value", ["3.x", "v3.21.4", "4.3.2", "latest"])
def test_a_malformed_version_is_refused_naming_it(tmp_path: Path, value: str) -> None:
    result = build(tmp_path, HELM_VERSION=value)
    assert result.returncode == 1
    assert "HELM_VERSION: expected a helm 3 release such as 3.21.4" in result.stderr
    assert f"(got '{value}')" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_version_the_proxy_does_not_serve_is_refused_naming_it(tmp_path: Path) -> None:
    result = build(tmp_path, HELM_VERSION="3.99.0")
    assert result.returncode == 1
    assert (
        "HELM_VERSION 3.99.0: the Go module proxy does not serve helm.sh/helm/v3@v3.99.0"
    ) in result.stderr, result.stderr
    assert not (tmp_path / "helm-3.99.0" / "bin" / "helm").exists()


def test_a_machine_without_helm_is_told_to_run_make_helm(tmp_path: Path) -> None:
    with pytest.raises(HelmMissing, match=r"missing; run `make helm` \(tooling/helm/build.sh"):
        helm_binary({"HEADROOM_CACHE": str(tmp_path)})
    # A binary without the RECIPE stamp is a build that did not finish.
    binary = tmp_path / f"helm-{helm_version({})}" / "bin" / "helm"
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    with pytest.raises(HelmMissing):
        helm_binary({"HEADROOM_CACHE": str(tmp_path)})


def test_the_built_helm_is_the_pinned_version_and_a_second_build_does_nothing() -> None:
    version = run_helm(["version", "--template", "{{ .Version }}"]).stdout
    assert version == f"v{helm_version({})}"
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=60, check=True
    )
    assert f"helm: {helm_version()} cached in {helm_binary().parent}" in result.stdout
