"""`headroom extender` refuses flags that cannot work, naming them, before serving anything."""

from __future__ import annotations

import pytest

from cli.main import build_parser, main


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--staleness-seconds=0"], "--staleness-seconds: expected seconds above 0 (got 0.0)"),
        (["--leader-lease=just-a-name"], "--leader-lease: expected NAMESPACE/NAME"),
        (["--leader-lease=ns/"], "--leader-lease: expected NAMESPACE/NAME"),
        (["--workers=2"], "--workers: the extender keeps its reservations in one process"),
        (["--bind=nowhere"], "--bind"),
        (["--prometheus-url=prometheus:9090"], "--prometheus-url: expected an http(s) URL"),
        (["--prometheus-url=http://"], "--prometheus-url: expected an http(s) URL"),
        (
            ["--scale-down-stabilization-seconds=-1"],
            "--scale-down-stabilization-seconds: expected 0..3600 (got -1)",
        ),
        (
            ["--gpu-device-classes=GPU.nvidia.com"],
            "--gpu-device-classes: expected DNS subdomains such as gpu.nvidia.com",
        ),
        (["--gpu-drivers= , "], "--gpu-drivers: expected one or more names, comma-separated"),
        (["--metrics-bind=9411"], "--metrics-bind: expected HOST:PORT such as 0.0.0.0:9411"),
        (["--metrics-bind=:9411"], "--metrics-bind: expected HOST:PORT"),
        (["--metrics-bind=0.0.0.0:99999"], "--metrics-bind: expected HOST:PORT"),
    ],
)
def test_bad_flags_are_refused_naming_them(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["extender", *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("headroom extender: error: ")
    assert message in err


def test_an_unknown_policy_is_refused_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["extender", "--policy", "tight"])
    assert info.value.code == 2
    assert "--policy: invalid choice: 'tight'" in capsys.readouterr().err


def test_help_says_what_it_does(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["extender", "--help"])
    assert "scheduler extender" in " ".join(capsys.readouterr().out.split())


def test_every_flag_of_the_app_reaches_its_config() -> None:
    # A new setting is a flag and a field of the same name: nothing else carries it across.
    from extender.config import ExtenderConfig  # noqa: PLC0415

    args = build_parser().parse_args(
        [
            "extender",
            "--kubeconfig",
            "/k",
            "--policy",
            "spread",
            "--staleness-seconds",
            "30",
            "--leader-lease",
            "ns/lease",
            "--identity",
            "me",
            "--prometheus-url",
            "http://p:9090",
            "--scale-down-stabilization-seconds",
            "0",
            "--metrics-bind",
            "[::]:9411",
        ]
    )
    config = ExtenderConfig.from_args(args)
    assert config == ExtenderConfig(
        kubeconfig="/k",
        policy="spread",
        staleness_seconds=30.0,
        leader_lease="ns/lease",
        identity="me",
        prometheus_url="http://p:9090",
        scale_down_stabilization_seconds=0,
        metrics_bind="[::]:9411",
    )
    assert config.lease == ("ns", "lease") and config.problem() is None
    assert config.metrics_address == ("::", 9411)
    assert ExtenderConfig().lease is None
