"""The control-plane build's inputs: the versions file (each value overridable from the
environment), and a version that is malformed or that the Go proxy does not serve refused with a
message naming KUBERNETES_VERSION, before anything is built."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tooling.localcluster import BUILD_SCRIPT, versions


def test_the_versions_come_from_the_file_and_the_environment_overrides_each() -> None:
    shipped = versions({})
    assert shipped["KUBERNETES_VERSION"].startswith("1.37.")
    assert shipped["ETCD_VERSION"].startswith("3.6.")
    assert versions({"KUBERNETES_VERSION": "1.34.4"}) == {**shipped, "KUBERNETES_VERSION": "1.34.4"}


def build(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(BUILD_SCRIPT)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "HEADROOM_CACHE": str(tmp_path), **env},
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("KUBERNETES_VERSION", "1.x"),
        ("KUBERNETES_VERSION", "v1.37.2"),
        ("ETCD_VERSION", "latest"),
    ],
)
def test_a_malformed_version_is_refused_naming_it(
    tmp_path: Path, variable: str, value: str
) -> None:
    result = build(tmp_path, **{variable: value})
    assert result.returncode == 1
    assert f"{variable}: expected a release such as" in result.stderr
    assert f"(got '{value}')" in result.stderr
    assert not (tmp_path / "controlplane").exists()


def test_a_version_the_proxy_does_not_serve_is_refused_naming_it(tmp_path: Path) -> None:
    result = build(tmp_path, KUBERNETES_VERSION="1.99.0")
    assert result.returncode == 1
    assert (
        "KUBERNETES_VERSION 1.99.0: the Go module proxy does not serve k8s.io/kubernetes@v1.99.0"
    ) in result.stderr, result.stderr
    assert not list((tmp_path / "controlplane").glob("*/bin/*"))
