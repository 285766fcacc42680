"""gunicorn over TLS on loopback: `headroom webhook` as users run it, and serving.server's
promises (TLS 1.2 minimum, keep-alive, JSON logs with the uid, request timeout, graceful
shutdown, certificate rotation with no failed request)."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from prometheus_client.parser import text_string_to_metric_families

from certs import pki
from serving import server as serving
from tests.waiting import wait_for
from tests.webhook.fuzz import bodies, uid_of
from tests.webhook.helpers import PROFILES_FILE, encode, gpu_pod, patch_of, review_body
from tests.webhook.server import (
    Server,
    make_certs,
    serving_server,
    webhook_server,
)
from tooling.process import free_port

pytestmark = pytest.mark.server  # starts server processes on loopback


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, certs: Path) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("webhook")
    profiles = workdir / "profiles.yaml"
    shutil.copyfile(PROFILES_FILE, profiles)
    running = webhook_server(
        workdir,
        profiles,
        certs=certs,
        extra=["--timeout", "2", "--profile-poll-seconds", "0.2", "--log-level", "debug"],
    ).start()
    yield running
    assert running.stop() == 0


def test_a_review_over_tls_keeps_the_connection_alive(server: Server) -> None:
    conn = server.connection()
    try:
        status, first = server.post("/mutate", encode(review_body(gpu_pod(), uid="a")), conn)
        sock = conn.sock
        assert isinstance(sock, ssl.SSLSocket)
        version = sock.version()
        status2, second = server.post("/mutate", encode(review_body(gpu_pod(), uid="b")), conn)
        assert conn.sock is sock  # the same TLS connection served both
    finally:
        conn.close()
    assert (status, status2) == (200, 200)
    assert first["response"]["uid"] == "a" and second["response"]["uid"] == "b"
    assert patch_of(first["response"])
    assert version in ("TLSv1.2", "TLSv1.3")


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_tls_below_1_2_is_refused_by_the_server(server: Server) -> None:
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname, old.verify_mode = False, ssl.CERT_NONE  # only the version matters here
    old.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer TLS 1.1 at all
    old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw,
        pytest.raises(ssl.SSLError),
    ):
        old.wrap_socket(raw).close()
    wait_for(
        lambda: any(
            "unsupported protocol" in line.get("msg", "").lower()
            for line in server.log_lines("stderr")
        ),
        timeout_seconds=10,
        message="the server logging the refused TLS 1.1 handshake",
    )


def test_access_lines_are_json_with_the_request_uid(server: Server) -> None:
    status, _ = server.post("/mutate", encode(review_body(gpu_pod(), uid="log-me-42")))
    assert status == 200

    def logged() -> bool:
        return any(line.get("uid") == "log-me-42" for line in server.log_lines())

    wait_for(logged, timeout_seconds=10, message="the access line")
    line = next(line for line in server.log_lines() if line.get("uid") == "log-me-42")
    assert line["logger"] == "gunicorn.access" and line["path"] == "/mutate"
    assert line["status"] == 200 and line["result"] == "patched" and line["profile"] == "default"
    assert line["duration_ms"] >= 0
    for text in (server.stdout.read_text() + server.stderr.read_text()).splitlines():
        assert isinstance(json.loads(text), dict), text  # every line of the log is JSON


def test_a_sample_of_fuzz_bodies_over_tls_gets_no_5xx(server: Server) -> None:
    conn = server.connection()
    try:
        for body in bodies(300, seed=7):
            status, answer = server.post("/mutate", body, conn)
            assert status in (200, 400), body
            if status == 200:
                assert answer["response"]["uid"] == uid_of(body)
    finally:
        conn.close()
    assert server.get("/metrics")[0] == 200


def test_a_stalled_body_times_out_and_frees_the_thread(server: Server) -> None:
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw,
        server.client_context().wrap_socket(raw, server_hostname="127.0.0.1") as stalled,
    ):
        stalled.sendall(b"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
        started = time.monotonic()
        answer = stalled.recv(4096)  # the server gives up after --timeout 2
        assert 1.5 < time.monotonic() - started < 8
        assert answer.split(b"\r\n", 1)[0] == b"HTTP/1.1 400 BAD REQUEST", answer
    assert server.get("/healthz")[0] == 200


def test_a_profiles_file_change_reaches_the_running_server(tmp_path: Path, certs: Path) -> None:
    profiles = tmp_path / "profiles.yaml"
    profiles.write_text("profiles:\n  default: {maxGpus: 1}\n")
    running = webhook_server(
        tmp_path, profiles, certs=certs, extra=["--profile-poll-seconds", "0.1"]
    ).start()
    try:
        two = encode(review_body(gpu_pod(gpus="2")))
        assert running.post("/mutate", two)[1]["response"]["allowed"] is False
        profiles.write_text("profiles:\n  default: {maxGpus: 4}\n")
        wait_for(
            lambda: running.post("/mutate", two)[1]["response"]["allowed"] is True,
            timeout_seconds=20,
            message="the reloaded profile",
        )
    finally:
        assert running.stop() == 0


def test_bad_profiles_stop_the_start_with_the_key_named(tmp_path: Path, certs: Path) -> None:
    profiles = tmp_path / "profiles.yaml"
    profiles.write_text(
        "profiles:\n  default: {}\n  gpu-large:\n    tolerations:\n"
        "      - {key: nvidia.com/gpu, effect: Sometimes}\n"
    )
    server = webhook_server(tmp_path, profiles, certs=certs)
    result = subprocess.run(server.argv, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert (
        "profiles.gpu-large.tolerations[0].effect: expected one of NoSchedule, "
        "PreferNoSchedule, NoExecute (got 'Sometimes')"
    ) in result.stderr


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--bind", "nowhere"], "--bind: expected HOST:PORT"),
        (
            ["--certfile", "/nonexistent.crt", "--keyfile", "/nonexistent.key"],
            "--certfile/--keyfile",
        ),
        (["--certfile", "/nonexistent.crt"], "give both for TLS"),
        (["--workers", "0"], "--workers: expected a whole number of at least 1"),
    ],
)
def test_bad_serving_flags_stop_the_start(tmp_path: Path, flags: list[str], message: str) -> None:
    server = webhook_server(tmp_path, PROFILES_FILE, certs=None, extra=flags)
    result = subprocess.run(server.argv, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr


def test_in_flight_requests_finish_on_sigterm(tmp_path: Path) -> None:
    marker = tmp_path / "started"
    server = serving_server(
        tmp_path,
        f"tests.webhook.slow_app:create_app({str(marker)!r})",
        certs=None,
        graceful_timeout_seconds=15,
    ).start()
    result: dict[str, object] = {}

    def slow_request() -> None:
        result["answer"] = server.get("/slow?seconds=1.5")

    thread = threading.Thread(target=slow_request)
    thread.start()
    wait_for(marker.exists, timeout_seconds=10, message="the slow request to start")
    assert server.process is not None
    server.process.terminate()
    thread.join(30)
    assert result["answer"] == (200, b"done")
    assert server.process.wait(30) == 0


def test_the_worker_builds_the_app_from_the_config_and_runs_its_lifecycle(tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    config = f"Config(greeting='hello from the config', journal={str(journal)!r})"
    code = (
        "import sys\nfrom serving import server\n"
        "from tests.serving.lifecycle_app import Config\n"
        "sys.exit(server.run(server.ServeOptions(app='tests.serving.lifecycle_app:create_app', "
        f"config={config}, bind='127.0.0.1:{{}}')))\n"
    )
    port = free_port()
    server = Server(
        argv=[sys.executable, "-c", code.format(port)], workdir=tmp_path, port=port, ca_file=None
    ).start()
    assert server.get("/") == (200, b"hello from the config")
    wait_for(
        lambda: journal.exists() and journal.read_text() == "start\n",
        timeout_seconds=10,
        message="the worker to start the app's lifecycle",
    )
    assert server.stop() == 0
    assert journal.read_text() == "start\nstop\n"  # stopped as the worker left, not before


def rotate(certs: Path) -> int:
    """Reissue the serving pair under the same CA; the new certificate's serial number."""
    make_certs(certs, reuse_ca=True)
    serial: int = pki.KeyPair((certs / "tls.crt").read_bytes(), b"").certificate().serial_number
    return serial


def served_serial(server: Server) -> int:
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw,
        server.client_context().wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    serial: int = x509.load_der_x509_certificate(der).serial_number
    return serial


def test_a_rotated_certificate_is_served_with_no_failed_request(tmp_path: Path) -> None:
    certs = make_certs(tmp_path / "certs")
    server = serving_server(
        tmp_path,
        "tests.webhook.slow_app:create_app('/dev/null')",
        certs=certs,
        cert_poll_seconds=0.2,
        access_log=False,
    ).start()
    failures: list[str] = []
    counts = {"new": 0, "kept": 0}
    stop = threading.Event()

    def client(keep_alive: bool) -> None:
        conn = server.connection()
        while not stop.is_set():
            try:
                if not keep_alive:
                    conn.close()
                    conn = server.connection()
                conn.request("POST", "/echo", b"ping")
                response = conn.getresponse()
                if (response.status, response.read()) != (200, b"ping"):
                    failures.append(f"status {response.status}")
                counts["kept" if keep_alive else "new"] += 1
            except (OSError, ssl.SSLError) as exc:  # any of these is a failed request
                failures.append(repr(exc))
        conn.close()

    threads = [threading.Thread(target=client, args=(i % 2 == 0,)) for i in range(4)]
    for thread in threads:
        thread.start()
    try:
        old_serial = served_serial(server)
        wait_for(lambda: counts["new"] > 20, timeout_seconds=20, message="traffic")
        # A half-written pair (new certificate, old key) must not be served: the old pair stays.
        new_pair = make_certs(tmp_path / "next")
        shutil.copyfile(new_pair / "tls.crt", certs / "tls.crt")
        wait_for(
            lambda: any(
                "do not load" in line.get("msg", "") for line in server.log_lines("stderr")
            ),
            timeout_seconds=20,
            message="the mismatched pair to be refused",
        )
        assert served_serial(server) == old_serial
        new_serial = rotate(certs)  # the complete new pair under the same CA
        wait_for(
            lambda: served_serial(server) == new_serial,
            timeout_seconds=60,
            message="the new certificate to be served",
        )
        before = counts["new"]
        wait_for(
            lambda: counts["new"] > before + 20,
            timeout_seconds=20,
            message="traffic after the rotation",
        )
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
        code = server.stop()
    assert failures == []
    assert counts["kept"] > 0 and counts["new"] > 0
    assert code == 0


def test_metrics_add_up_all_workers(tmp_path: Path, certs: Path) -> None:
    server = webhook_server(
        tmp_path, PROFILES_FILE, certs=certs, extra=["--workers", "2", "--threads", "1"]
    ).start()
    try:
        for i in range(30):  # new connections, spread over both workers
            assert server.post("/mutate", encode(review_body(gpu_pod(), uid=f"m{i}")))[0] == 200
        totals = [_requests_total(server) for _ in range(6)]
    finally:
        assert server.stop() == 0
    assert totals == [30.0] * 6, totals


def _requests_total(server: Server) -> float:
    status, text = server.get("/metrics")
    assert status == 200
    total = 0.0
    for family in text_string_to_metric_families(text.decode()):
        if family.name == "headroom_webhook_requests":
            total += sum(s.value for s in family.samples if s.name.endswith("_total"))
    return total


def test_several_workers_refuse_a_process_that_imported_prometheus_already() -> None:
    # This test process has (prometheus_client is imported above): its multiprocess mode can no
    # longer be switched on, so /metrics would show one worker's numbers at random.
    with pytest.raises(serving.ServeError, match="--workers above 1"):
        serving.validate(
            serving.ServeOptions(app="tests.webhook.slow_app:create_app('x')", workers=2)
        )
    serving.validate(serving.ServeOptions(app="tests.webhook.slow_app:create_app('x')"))
