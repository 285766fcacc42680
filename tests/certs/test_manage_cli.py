"""Tests for `headroom certs manage`'s command line: every bad flag exits 2 with one line naming it,
before any API access."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.main import main

PREFIX = "headroom certs manage: error: "


def run_manage(tmp_path: Path, *extra: str) -> int:
    # No cluster anywhere: a flag error must come first, without trying to reach one.
    kubeconfig = tmp_path / "absent-kubeconfig"
    return main(
        ["certs", "manage", "--out-dir", str(tmp_path), f"--kubeconfig={kubeconfig}", *extra]
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--ca-validity", "5y"], "--ca-validity: expected a duration such as 90d"),
        (["--serving-validity", "0s"], "--serving-validity: expected a duration above zero"),
        (["--rotation-grace", "soon"], "--rotation-grace: expected a duration"),
        (["--resync=-1m"], "--resync: expected a duration"),
        (["--renew-before", "1.5"], "--renew-before: expected a fraction between 0 and 1"),
        (["--service", "Web_Hook"], "--service 'Web_Hook' is not a DNS-1123 label"),
        (["--namespace", "a" * 64], "--namespace 'aaaa"),
        (["--secret", "bad/name"], "--secret 'bad/name' is not a DNS-1123 subdomain"),
        (
            ["--webhook-configuration", "Bad"],
            "--webhook-configuration 'Bad' is not a DNS-1123 subdomain",
        ),
        (["--ip", "1.2.3"], "--ip '1.2.3' is not an IPv4 or IPv6 address"),
        (
            ["--resync", "31m"],
            "--rotation-grace (1h) must be at least twice --resync (31m)",
        ),
        (
            ["--serving-validity", "5h"],
            "--renew-before x --serving-validity (1h40m) must be at least twice --rotation-grace",
        ),
        (
            ["--ca-validity", "60d"],
            "--renew-before x --ca-validity (20d) must be at least --serving-validity plus twice",
        ),
    ],
)
def test_a_bad_flag_exits_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    assert run_manage(tmp_path, *extra) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(PREFIX + message), captured.err
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert captured.out == ""


def test_a_missing_kubeconfig_exits_2_naming_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_manage(tmp_path, "--once") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{PREFIX}--kubeconfig: no such file"), err
    assert list(tmp_path.iterdir()) == []


def test_the_defaults_are_consistent_and_short_test_durations_pass(tmp_path: Path) -> None:
    import argparse  # noqa: PLC0415

    from certs.cli import register  # noqa: PLC0415
    from certs.manage import settings_from_args  # noqa: PLC0415

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    defaults = settings_from_args(parser.parse_args(["certs", "manage", "--out-dir", "x"]))
    assert defaults.policy.ca_validity.days == 365
    assert defaults.policy.serving_validity.days == 30
    assert defaults.names.dns_names[2] == "headroom-webhook.headroom-system.svc"
    quick = [
        *("certs", "manage", "--out-dir", "x", "--ca-validity", "2m", "--serving-validity", "40s"),
        *("--renew-before", "1/2", "--rotation-grace", "8s", "--resync", "1s"),
    ]
    assert settings_from_args(parser.parse_args(quick)).policy.grace.total_seconds() == 8


def test_help_lists_manage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["certs", "--help"])
    assert info.value.code == 0
    assert "manage" in capsys.readouterr().out
