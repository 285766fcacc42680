"""`headroom nodeagent`: each flag refused with a message naming it, `--once` through the real
console script (fake NVML on LD_LIBRARY_PATH, and no NVML at all), start-up errors, and NVML
left alone at import."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from cli.main import main
from nodeagent.nvml import LIBRARY_NOT_FOUND_REASON
from tooling.fakenvml import GIB, FakeNvml, agent_env, device, pod_cgroup, write_proc

pytestmark = pytest.mark.server  # starts server processes on loopback

SCRIPT = Path(sys.executable).parent / "headroom"
POD = "0a1b2c3d-0000-4000-8000-00000000000a"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--interval-seconds", "0"],
            "argument --interval-seconds: expected a number of seconds >= 0.1, such as 5 (got '0')",
        ),
        (["--interval-seconds", "soon"], "argument --interval-seconds: expected a number"),
        (["--interval-seconds", "nan"], "argument --interval-seconds: expected a number"),
        (
            ["--heartbeat-seconds", "0.5"],
            "argument --heartbeat-seconds: expected a number of seconds >= 1",
        ),
        (
            ["--xid-hold-seconds", "-1"],
            "argument --xid-hold-seconds: expected a number of seconds "
            ">= 0, such as 600 (got '-1')",
        ),
        (
            ["--deadband", "lots"],
            "argument --deadband: not a quantity (got 'lots'; expected a "
            "Kubernetes quantity of bytes",
        ),
        (["--deadband=-1Mi"], "argument --deadband: must not be negative"),
        (
            ["--proc-root", "/no/such/dir"],
            "argument --proc-root: expected a directory such as /proc (got '/no/such/dir')",
        ),
        (["--metrics-bind", "9410"], "argument --metrics-bind: expected HOST:PORT"),
        (["--metrics-bind", "0.0.0.0:99999"], "argument --metrics-bind: expected HOST:PORT"),
        (["--metrics-bind", "example.com:80"], "argument --metrics-bind: expected HOST:PORT"),
        (
            ["--device-taints", "noschedule"],
            "argument --device-taints: expected one of off, NoSchedule, NoExecute: the effect "
            "of the taints, or off (got 'noschedule')",
        ),
        (["--device-taints", "None"], "argument --device-taints: expected one of off"),
        (
            ["--gpu-drivers", "GPU.nvidia.com"],
            "argument --gpu-drivers: expected DNS subdomains such as gpu.nvidia.com "
            "(got 'GPU.nvidia.com')",
        ),
        (["--gpu-drivers", " , "], "argument --gpu-drivers: expected one or more names"),
    ],
)
def test_a_bad_flag_is_refused_naming_it(
    capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["nodeagent", "--node-name", "n1", *args])
    assert info.value.code == 2
    assert expected in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], "--node-name: required (or set NODE_NAME"),
        (["--node-name", "Bad_Name"], "--node-name: expected a Node name"),
        (
            ["--node-name", "n1", "--interval-seconds", "60"],
            "--heartbeat-seconds: must be at least --interval-seconds (60) (got 30)",
        ),
    ],
)
def test_node_name_and_flag_combinations(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    expected: str,
) -> None:
    monkeypatch.delenv("NODE_NAME", raising=False)
    assert main(["nodeagent", *args]) == 2
    assert f"headroom nodeagent: error: {expected}" in capsys.readouterr().err


def test_good_flags_parse() -> None:
    from cli.main import build_parser  # noqa: PLC0415

    args = build_parser().parse_args(
        [
            "nodeagent",
            "--node-name",
            "n1",
            "--interval-seconds",
            "2.5",
            "--deadband",
            "1Gi",
            "--metrics-bind",
            "[::1]:9999",
            "--xid-hold-seconds",
            "0",
        ]
    )
    assert (args.interval_seconds, args.deadband, args.metrics_bind, args.xid_hold_seconds) == (
        2.5,
        GIB,
        ("::1", 9999),
        0.0,
    )
    defaults = build_parser().parse_args(["nodeagent"])
    assert (
        defaults.interval_seconds,
        defaults.heartbeat_seconds,
        defaults.deadband,
        defaults.metrics_bind,
    ) == (5.0, 30.0, 256 * 2**20, ("0.0.0.0", 9410))  # noqa: S104
    assert (defaults.device_taints, defaults.gpu_drivers) == ("off", ("gpu.nvidia.com",))


def test_device_taint_settings_reach_the_agent_config(monkeypatch: pytest.MonkeyPatch) -> None:
    import nodeagent.agent  # noqa: PLC0415

    seen: list[nodeagent.agent.AgentConfig] = []

    def fake_run_agent(config: nodeagent.agent.AgentConfig, stop: object) -> int:
        seen.append(config)
        return 0

    monkeypatch.setattr(nodeagent.agent, "run_agent", fake_run_agent)
    monkeypatch.setattr(signal, "signal", lambda *_: None)  # keep pytest's own handlers
    args = ["--device-taints=NoExecute", "--gpu-drivers", "gpu.nvidia.com, gpu.example.com"]
    assert main(["nodeagent", "--node-name", "n1", *args]) == 0
    assert main(["nodeagent", "--node-name", "n2"]) == 0
    assert [(c.node_name, c.device_taints, c.gpu_drivers) for c in seen] == [
        ("n1", "NoExecute", ("gpu.nvidia.com", "gpu.example.com")),
        ("n2", "off", ("gpu.nvidia.com",)),
    ]


def run_script(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), "nodeagent", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=timeout,
    )


def test_once_prints_the_report_through_the_real_library_loader(
    fake_library: Path, tmp_path: Path
) -> None:
    state = FakeNvml(
        tmp_path / "nvml.json",
        {"devices": [device(0, used=5 * GIB, processes=[{"pid": 4242, "used": 4 * GIB}])]},
    )
    write_proc(tmp_path / "proc", 4242, pod_cgroup(POD))
    result = run_script(
        "--once",
        "--node-name",
        "gpu-node-1",
        "--proc-root",
        str(tmp_path / "proc"),
        env=agent_env(fake_library, state.path),
    )
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert (status["healthy"], status["gpuCount"], status["freeMemory"]) == (True, 1, "19Gi")
    assert status["gpus"][0]["pods"] == [
        {"uid": POD, "namespace": "", "name": "", "usedBytes": 4 * GIB}
    ]
    assert status["gpus"][0]["unattributedBytes"] == GIB


def test_once_without_nvml_reports_the_node_unhealthy(tmp_path: Path) -> None:
    env = agent_env(tmp_path, tmp_path / "unused.json")  # tmp_path holds no library
    result = run_script("--once", "--node-name", "gpu-node-1", env=env)
    assert result.returncode == 1
    status = json.loads(result.stdout)
    assert (status["healthy"], status["reason"], status["gpus"]) == (
        False,
        LIBRARY_NOT_FOUND_REASON,
        [],
    )


def test_importing_the_agent_leaves_nvml_untouched(fake_library: Path, tmp_path: Path) -> None:
    state = FakeNvml(tmp_path / "nvml.json", {"devices": [device(0)]})
    code = (
        "import sys, nodeagent.cli, nodeagent.agent, nodeagent.nvml\n"
        "print(sys.modules['pynvml'].nvmlLib is None)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=agent_env(fake_library, state.path),
        check=True,
        timeout=60,
    )
    assert result.stdout.strip() == "True"  # not even loaded, let alone initialised


def test_startup_errors_name_what_is_wrong(fake_library: Path, tmp_path: Path) -> None:
    state = FakeNvml(tmp_path / "nvml.json", {"devices": [device(0)]})
    env = agent_env(fake_library, state.path)
    result = run_script("--node-name", "n1", "--kubeconfig", str(tmp_path / "missing"), env=env)
    assert result.returncode == 2
    assert "--kubeconfig: no such file" in result.stderr
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "
        "'https://127.0.0.1:1'}}]\nusers: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n"
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_script(
            "--node-name",
            "n1",
            "--kubeconfig",
            str(kubeconfig),
            "--metrics-bind",
            f"127.0.0.1:{port}",
            env=env,
        )
    assert result.returncode == 2
    assert f"--metrics-bind: cannot listen on 127.0.0.1:{port}" in result.stderr
