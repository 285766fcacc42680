"""The `headroom` console script: installed, and its help says what each subcommand does."""

import subprocess
import sys
from pathlib import Path

import pytest

from cli.main import main

SCRIPT = Path(sys.executable).parent / "headroom"


def test_the_console_script_is_installed_and_lists_its_subcommands() -> None:
    result = subprocess.run(
        [str(SCRIPT), "--help"], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "really free" in " ".join(result.stdout.split())  # argparse wraps lines
    for command in ("certs", "extender", "nodeagent", "status", "webhook"):
        assert command in result.stdout, command
    # The demo is repository tooling (python -m tooling.demo), not part of the installed command.
    assert "demo" not in result.stdout


def test_an_unknown_subcommand_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["scale"])
    assert info.value.code == 2
    assert "invalid choice: 'scale'" in capsys.readouterr().err


def test_a_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    assert "required" in capsys.readouterr().err


def test_status_names_a_missing_kubeconfig(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--kubeconfig", "/nonexistent/kubeconfig"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("headroom status: error: --kubeconfig: no such file")


def test_status_refuses_an_unknown_output(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["status", "--output", "yaml"])
    assert info.value.code == 2
    assert "argument --output/-o: invalid choice: 'yaml'" in capsys.readouterr().err
