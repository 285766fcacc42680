"""The `kubectl-headroom` command: its entry point, each subcommand through `main` against a fake
API, the errors (exit 1, one line naming what is missing) and usage errors (exit 2), and the
connection flags taken before or after the subcommand."""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from cli import api
from cli.cluster import Cluster
from cli.kubectl import duration_seconds, main
from kubeapi.client import ApiError, NotFound, Unreachable
from tests.cli.fakecluster import cluster, fake_kube
from tests.cli.plugin import ROOT, env_with, plugin_dir
from tests.extender.builders import NOW, gpunode, node, pod
from tests.kubeapi.fake import FakeKube
from tests.kubeapi.kubeconfigs import kubeconfig
from tooling.process import free_port


def test_pyproject_declares_the_plugins_entry_point() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["kubectl-headroom"] == "cli.kubectl:main"


def test_the_plugin_runs_as_a_program_and_lists_its_commands(tmp_path: Path) -> None:
    where = plugin_dir(tmp_path)
    result = subprocess.run(
        ["kubectl-headroom", "--help"],
        env=env_with(where),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: kubectl headroom")
    for command in ("status", "why", "top"):
        assert command in result.stdout


def scene() -> FakeKube:
    waiting = pod("want", memory="40Gi")
    return fake_kube(
        gpunodes=[gpunode("a", [80], used_gi=60), gpunode("b", [80])],
        nodes=[node("a"), node("b")],
        pods=[waiting],
    )


@pytest.fixture
def connected(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """`main` talks to `scene()` (or the FakeKube put in "kube"); "args" records how it
    connected."""
    seen: dict[str, Any] = {"kube": scene()}

    def fake_connect(kubeconfig: str | None, **kwargs: Any) -> Cluster:
        seen["args"] = {"kubeconfig": kubeconfig, **kwargs}
        return cluster(seen["kube"], namespace=kwargs["namespace"] or "ml")

    monkeypatch.setattr("cli.kubectl.connect", fake_connect)
    monkeypatch.setattr("cli.kubectl.time", SimpleNamespace(time=lambda: NOW))  # the reports' now
    return seen


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_why_prints_the_table_and_json(
    connected: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run(capsys, "why", "want")
    assert status == 0
    assert out.splitlines()[-1] == "would go to b, GPU 0 (GPU-b-0): score 0 of 10 (binpack)"
    status, out, _ = run(capsys, "why", "pod/want", "-o", "json", "--policy", "spread")
    assert status == 0
    data = json.loads(out)
    assert (data["state"], data["policy"], data["nodes"][0]["node"]) == ("pending", "spread", "b")


def test_status_is_headroom_status(
    connected: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run(capsys, "status")
    assert status == 0
    assert out.splitlines()[0].split()[:3] == ["NODE", "GPU", "MODEL"]
    status, out, _ = run(capsys, "status", "-o", "json")
    assert [g["node"] for g in json.loads(out)["gpus"]] == ["a", "b"]


def test_top_lists_gpus_most_free_first(
    connected: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run(capsys, "top")
    assert status == 0
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["b", "a"]
    status, out, _ = run(capsys, "top", "--node", "a", "-o", "json")
    assert [g["node"] for g in json.loads(out)["gpus"]] == ["a"]


def test_connection_flags_work_before_and_after_the_subcommand(
    connected: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "--context", "prod", "-n", "team", "--request-timeout", "30s", "why", "x")
    assert connected["args"] == {
        "kubeconfig": None,
        "context": "prod",
        "namespace": "team",
        "timeout_seconds": 30.0,
    }
    run(capsys, "why", "x", "--kubeconfig", "/k", "--context", "dev", "--namespace", "ml")
    assert connected["args"] == {
        "kubeconfig": "/k",
        "context": "dev",
        "namespace": "ml",
        "timeout_seconds": 10.0,
    }


@pytest.mark.parametrize(
    ("path", "error", "words"),
    [
        (api.GPUNODES, NotFound("no"), "Headroom's CRDs are not installed in this cluster"),
        (api.PODS, ApiError(403, "forbidden"), "no permission to read pods (list cluster-wide)"),
        (
            api.pod("ml", "want"),
            Unreachable("refused"),
            "cannot reach the cluster at https://203.0.113.7:6443",
        ),
    ],
)
def test_errors_exit_1_with_one_line_naming_what_is_missing(
    connected: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    path: str,
    error: ApiError,
    words: str,
) -> None:
    connected["kube"] = scene().on("GET", path, error)
    status, out, err = run(capsys, "why", "want")
    assert (status, out) == (1, "")
    assert err.startswith(f"kubectl headroom: error: {words}")
    assert err.count("\n") == 1


def test_a_missing_pod_exits_1_naming_it(
    connected: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run(capsys, "why", "ghost", "-n", "ml")
    assert status == 1
    assert err == 'kubectl headroom: error: pod "ghost" not found in namespace ml\n'


def test_an_unreachable_server_names_its_url_and_the_time_waited(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = f"https://127.0.0.1:{free_port()}"
    config = kubeconfig(tmp_path / "config", current="lab", contexts={"lab": (server, "ml")})
    status, _, err = run(capsys, "top", "--kubeconfig", str(config), "--request-timeout", "2")
    assert status == 1
    assert err.startswith(
        f"kubectl headroom: error: cannot reach the cluster at {server} (waited 2s to connect "
        "and 2s for an answer; context lab): "
    )


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        ([], "the following arguments are required: COMMAND"),
        (["why"], "the following arguments are required: POD"),
        (["top", "--request-timeout", "0"], "expected a duration above 0 such as 10s"),
        (["why", "x", "--staleness-seconds", "-1"], "expected seconds above 0"),
        (["status", "--gpu-device-classes", "GPU_big"], "expected DNS subdomains"),
        (["top", "-o", "yaml"], "invalid choice: 'yaml'"),
        (["scale"], "invalid choice: 'scale'"),
    ],
)
def test_usage_errors_exit_2(
    argv: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert words in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10", 10.0), ("10s", 10.0), ("1.5m", 90.0), ("500ms", 0.5), ("1h", 3600.0)],
)
def test_request_timeouts_read_as_kubectl_writes_them(text: str, seconds: float) -> None:
    assert duration_seconds(text) == seconds
