"""`headroom webhook`: listed in the help, refuses bad input before serving, and stays light to
import (no Flask, gunicorn or prometheus_client until it serves)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cli.main import build_parser, main
from tests.webhook.helpers import PROFILES_FILE, ROOT
from webhook.config import WebhookConfig, parse_device_classes


def test_the_webhook_subcommand_is_listed() -> None:
    assert "webhook" in build_parser().format_help()


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    status = main(["webhook", *args])
    return status, capsys.readouterr().err


def test_a_bad_profiles_file_exits_2_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    profiles = tmp_path / "profiles.yaml"
    profiles.write_text("profiles:\n  default: {readinessGate: maybe}\n")
    status, err = run_cli(capsys, "--profiles", str(profiles))
    assert status == 2
    assert err.startswith(
        f"headroom webhook: error: {profiles}: profiles.default.readinessGate: "
        "expected true or false (got 'maybe')"
    )


def test_a_missing_profiles_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, err = run_cli(capsys, "--profiles", str(tmp_path / "nope.yaml"))
    assert status == 2 and "No such file" in err


def test_a_poll_interval_of_zero_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    status, err = run_cli(capsys, "--profiles", str(PROFILES_FILE), "--profile-poll-seconds", "0")
    assert status == 2 and "--profile-poll-seconds" in err


def test_importing_the_command_loads_no_server_library() -> None:
    code = (
        "import sys, cli.main\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('flask', 'gunicorn', 'prometheus_client', 'werkzeug', 'jsonpatch')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
        timeout=60,
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("GPU.nvidia.com", "expected DNS subdomains such as gpu.nvidia.com (got 'GPU.nvidia.com')"),
        ("gpu_nvidia", "(got 'gpu_nvidia')"),
        ("-gpu", "(got '-gpu')"),
        ("a" * 254, "expected DNS subdomains"),
        ("", "expected one or more names, comma-separated"),
        (" , ", "expected one or more names, comma-separated"),
    ],
)
def test_a_bad_device_class_is_refused_naming_the_flag(
    capsys: pytest.CaptureFixture[str], value: str, named: str
) -> None:
    status, err = run_cli(capsys, "--profiles", str(PROFILES_FILE), f"--gpu-device-classes={value}")
    assert status == 2
    assert err.startswith("headroom webhook: error: --gpu-device-classes: "), err
    assert named in err


def test_device_classes_are_parsed_into_the_config() -> None:
    args = build_parser().parse_args(
        ["webhook", "--profiles", "p", "--gpu-device-classes", "gpu.nvidia.com, gpu.example.com"]
    )
    classes = parse_device_classes(args.gpu_device_classes)
    assert classes == ("gpu.nvidia.com", "gpu.example.com")
    assert WebhookConfig(profiles=Path("p"), gpu_device_classes=classes).problem() is None
    default = build_parser().parse_args(["webhook", "--profiles", "p"])
    assert parse_device_classes(default.gpu_device_classes) == ("gpu.nvidia.com",)
    assert default.in_cluster is False and default.kubeconfig is None


def test_api_access_is_one_flag_or_none(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["webhook", "--profiles", str(PROFILES_FILE), "--in-cluster", "--kubeconfig", "k"])
    assert info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
    status, err = run_cli(
        capsys, "--profiles", str(PROFILES_FILE), "--kubeconfig", str(tmp_path / "nope")
    )
    assert status == 2
    assert err.startswith("headroom webhook: error: --kubeconfig: cannot configure API access")
