"""Probes translated to this host (the pod's IP, named ports, rewritten exec paths), judged by
the kubelet's timing and thresholds, and run once against real endpoints."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from tooling.podrunner_env import MountMap, SpecError
from tooling.podrunner_probes import Probe, ProbeTracker, Timing, run_probe, translate

CONTAINER = {"name": "webhook", "ports": [{"name": "https", "containerPort": 8443}]}
MOUNTS = MountMap({"/etc/headroom/tls": Path("/w/tls")})


def probe(spec: dict[str, object]) -> Probe:
    return translate(spec, CONTAINER, pod_ip="192.0.2.2", mounts=MOUNTS, where="readinessProbe")


def test_http_get_goes_to_the_pod_ip_and_the_named_port() -> None:
    got = probe(
        {"httpGet": {"path": "/readyz", "port": "https", "scheme": "HTTPS"}, "periodSeconds": 5}
    )
    assert got.kind == "http"
    assert got.url == "https://192.0.2.2:8443/readyz"
    assert got.timing == Timing(period_seconds=5.0)
    assert probe({"httpGet": {"port": 9410, "path": "livez"}}).url == "http://192.0.2.2:9410/livez"
    assert probe({"tcpSocket": {"port": "https"}}).address == ("192.0.2.2", 8443)


def test_exec_commands_have_their_mount_paths_rewritten() -> None:
    got = probe({"exec": {"command": ["test", "-s", "/etc/headroom/tls/tls.crt"]}})
    assert got.command == ("test", "-s", "/w/tls/tls.crt")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"httpGet": {"port": "metrics"}}, r"readinessProbe.httpGet.port: port 'metrics'"),
        ({"grpc": {"port": 9000}}, r"readinessProbe: probe handler grpc: podrunner runs"),
        ({"exec": {"command": []}}, r"readinessProbe.exec.command: empty"),
    ],
)
def test_a_probe_that_cannot_run_names_the_field(spec: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        probe(spec)


def test_the_tracker_waits_the_initial_delay_and_applies_both_thresholds() -> None:
    timing = Timing(
        initial_delay_seconds=10, period_seconds=5, success_threshold=2, failure_threshold=3
    )
    tracker = ProbeTracker(Probe("exec", timing, command=("true",)), started=100.0)
    assert not tracker.due(109.9) and tracker.due(110.0)
    tracker.record(True, 110.0)
    assert not tracker.succeeded  # one pass of the two needed
    assert not tracker.due(114.9) and tracker.due(115.0)
    tracker.record(True, 115.0)
    assert tracker.succeeded
    tracker.record(False, 120.0)
    tracker.record(False, 125.0)
    assert tracker.succeeded and not tracker.failed  # two failures of the three allowed
    tracker.record(True, 130.0)  # a pass resets the count
    tracker.record(False, 135.0)
    tracker.record(False, 140.0)
    assert not tracker.failed
    tracker.record(False, 145.0, message="connection refused")
    assert tracker.failed and not tracker.succeeded
    assert tracker.last_message == "connection refused"


def test_run_probe_against_real_endpoints(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert run_probe(Probe("tcp", address=("127.0.0.1", port)), env={}, cwd=tmp_path)[0]
    closed, message = run_probe(Probe("tcp", address=("127.0.0.1", port)), env={}, cwd=tmp_path)
    assert not closed and message
    ok = Probe("exec", command=(sys.executable, "-c", "import os; assert os.environ['X'] == '1'"))
    assert run_probe(ok, env={"X": "1"}, cwd=tmp_path)[0]
    passed, message = run_probe(ok, env={"X": "2"}, cwd=tmp_path)
    assert not passed and message.startswith("exit 1")
    slow = Probe(
        "exec",
        Timing(timeout_seconds=0.2),
        command=(sys.executable, "-c", "import time; time.sleep(5)"),
    )
    assert run_probe(slow, env={}, cwd=tmp_path) == (False, "timed out after 0.2s")
