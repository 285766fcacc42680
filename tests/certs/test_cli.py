"""Tests for `headroom certs`: exit statuses, what goes to stdout and stderr, and the help."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from cli.main import main

ERROR_PREFIX = "headroom certs generate: error: "


def run_generate(out: Path, *extra: str) -> int:
    return main(["certs", "generate", "--out", str(out), "--service", "hr-webhook", *extra])


def test_generate_writes_files_and_reports_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert run_generate(out, "--ip", "10.0.0.1", "--ip", "fd00::1") == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    for name in ("ca.crt", "ca.key", "tls.crt", "tls.key", "secret.yaml", "cabundle.txt"):
        assert f"wrote {out / name}\n" in captured.out
    assert "caBundle" in captured.out
    cert = x509.load_pem_x509_certificate((out / "tls.crt").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "hr-webhook.headroom-system.svc" in san.get_values_for_type(x509.DNSName)
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["10.0.0.1", "fd00::1"]
    assert base64.b64decode((out / "cabundle.txt").read_text()) == (out / "ca.crt").read_bytes()


def test_options_reach_the_secret(tmp_path: Path) -> None:
    out = tmp_path / "out"
    extra = ["--namespace", "serving", "--secret-name", "webhook-certs", "--days", "7"]
    assert run_generate(out, *extra) == 0
    manifest = yaml.safe_load((out / "secret.yaml").read_text())
    assert manifest["metadata"] == {"name": "webhook-certs", "namespace": "serving"}
    cert = x509.load_pem_x509_certificate((out / "tls.crt").read_bytes())
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime.days == 7


def test_second_run_refuses_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert run_generate(out) == 0
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    capsys.readouterr()
    assert run_generate(out) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(ERROR_PREFIX)
    assert "--force" in captured.err
    assert "Traceback" not in captured.err
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before


def test_reuse_ca_and_force_succeed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert run_generate(out) == 0
    ca_before = (out / "ca.crt").read_bytes()
    capsys.readouterr()
    assert run_generate(out, "--reuse-ca") == 0
    captured = capsys.readouterr()
    assert f"kept {out / 'ca.crt'}" in captured.out
    assert f"wrote {out / 'ca.crt'}" not in captured.out
    assert (out / "ca.crt").read_bytes() == ca_before
    assert run_generate(out, "--force") == 0
    assert (out / "ca.crt").read_bytes() != ca_before


@pytest.mark.parametrize(
    ("extra", "flag"),
    [
        (["--service", "Bad_Name"], "--service"),
        (["--namespace", "UPPER"], "--namespace"),
        (["--ip", "300.1.1.1"], "--ip"),
        (["--days", "0"], "--days"),
        (["--secret-name", "no_underscores"], "--secret-name"),
        (["--force", "--reuse-ca"], "--force and --reuse-ca"),
        (["--reuse-ca"], "--reuse-ca needs an existing CA"),
    ],
)
def test_errors_exit_2_and_name_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], flag: str
) -> None:
    out = tmp_path / "out"
    assert run_generate(out, *extra) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(ERROR_PREFIX + flag)
    assert captured.err.count("\n") == 1
    assert not out.exists()


def test_out_that_is_a_file_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "not-a-dir"
    out.write_text("x")
    assert run_generate(out) == 2
    assert capsys.readouterr().err.startswith(ERROR_PREFIX)
    assert out.read_text() == "x"


def test_certs_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["certs", "--help"])
    assert caught.value.code == 0
    text = capsys.readouterr().out
    assert "certificates" in text.lower()
    assert "generate" in text


def test_certs_generate_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["certs", "generate", "--help"])
    assert caught.value.code == 0
    text = capsys.readouterr().out
    assert "certificate" in text.lower()
    for option in ("--out", "--service", "--namespace", "--ip", "--days", "--force", "--reuse-ca"):
        assert option in text


def test_top_level_help_lists_certs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--help"])
    assert caught.value.code == 0
    assert "certs" in capsys.readouterr().out


def test_certs_needs_a_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["certs"])
    assert caught.value.code == 2
    assert "SUBCOMMAND" in capsys.readouterr().err


def test_generate_needs_out_and_service(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["certs", "generate", "--service", "hr-webhook"])
    assert caught.value.code == 2
    assert "--out" in capsys.readouterr().err
