"""Choosing the cluster as kubectl does: `--kubeconfig`, else $KUBECONFIG's files merged (the
first to set a name wins), else ~/.kube/config; `--context` picks a context, whose namespace is
the default for `-n`. Errors name the flag and what was looked for."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes.config.config_exception import ConfigException

from kubeapi.client import KubeContext, kubeconfig_context, kubeconfig_files, load_api_client
from tests.kubeapi.kubeconfigs import kubeconfig


@pytest.fixture
def two_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    first = kubeconfig(
        tmp_path / "first", current="dev", contexts={"dev": ("https://192.0.2.1:6443", "ml")}
    )
    second = kubeconfig(
        tmp_path / "second",
        current="prod",
        contexts={"prod": ("https://192.0.2.2:6443", None), "dev": ("https://192.0.2.9", "x")},
    )
    monkeypatch.setenv("KUBECONFIG", f"{first}:{tmp_path / 'absent'}:{second}")
    return first, second


def test_kubeconfig_files_are_merged_and_the_first_current_context_wins(
    two_files: tuple[Path, Path],
) -> None:
    first, second = two_files
    assert kubeconfig_files() == f"{first}:{second}"  # the absent one left out
    assert load_api_client().configuration.host == "https://192.0.2.1:6443"
    assert kubeconfig_context() == KubeContext("dev", "ml")


def test_a_context_from_the_second_file_can_be_chosen(two_files: tuple[Path, Path]) -> None:
    api_client = load_api_client(context="prod")
    assert api_client.configuration.host == "https://192.0.2.2:6443"
    assert kubeconfig_context(context="prod") == KubeContext("prod", "")


def test_an_explicit_file_is_the_only_one_read(
    two_files: tuple[Path, Path], tmp_path: Path
) -> None:
    _, second = two_files
    assert load_api_client(str(second)).configuration.host == "https://192.0.2.2:6443"
    with pytest.raises(ConfigException, match=r"--context: no context 'dev-x' in .*second"):
        load_api_client(str(second), context="dev-x")


def test_an_unknown_context_is_named_with_the_ones_there_are(
    two_files: tuple[Path, Path],
) -> None:
    with pytest.raises(ConfigException, match=r"no context 'staging' .*\(it has: dev, prod\)"):
        load_api_client(context="staging")
    with pytest.raises(ConfigException, match="no context 'staging'"):
        kubeconfig_context(context="staging")


def test_a_missing_explicit_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigException, match="--kubeconfig: no such file"):
        load_api_client(str(tmp_path / "nope"))
    with pytest.raises(ConfigException, match="--kubeconfig: no such file"):
        kubeconfig_context(str(tmp_path / "nope"))


def test_a_context_without_any_kubeconfig_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    with pytest.raises(ConfigException, match="--context 'dev': no kubeconfig to find it in"):
        load_api_client(context="dev")
