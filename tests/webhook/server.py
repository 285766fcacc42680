"""A real `headroom webhook` (or any app under serving.server) in a child process on loopback,
for the component, e2e and rotation tests."""

from __future__ import annotations

import http.client
import json
import signal
import ssl
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from certs.generate import generate
from tests.waiting import wait_for
from tooling.process import free_port

HEADROOM = Path(sys.executable).parent / "headroom"


def make_certs(directory: Path, *, reuse_ca: bool = False) -> Path:
    """CA + serving certificate for 127.0.0.1 (the generated caBundle trusts it)."""
    generate(
        directory,
        service="headroom-webhook",
        namespace="headroom-system",
        ip_addresses=["127.0.0.1"],
        reuse_ca=reuse_ca,
        force=not reuse_ca,
    )
    return directory


@dataclass
class Server:
    """One server process; `stdout`/`stderr` are its log files (JSON lines)."""

    argv: list[str]
    workdir: Path
    port: int
    ca_file: Path | None
    process: subprocess.Popen[bytes] | None = None
    stdout: Path = field(init=False)
    stderr: Path = field(init=False)

    def __post_init__(self) -> None:
        self.stdout = self.workdir / f"server-{self.port}.out"
        self.stderr = self.workdir / f"server-{self.port}.err"

    def start(self, *, timeout_seconds: float = 30.0) -> Server:
        with self.stdout.open("ab") as out, self.stderr.open("ab") as err:
            self.process = subprocess.Popen(
                self.argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL
            )
        wait_for(self._ready, timeout_seconds=timeout_seconds, message="server ready")
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(
                f"server exited {self.process.returncode}: {self.stderr.read_text()[-3000:]}"
            )
        try:
            return self.get("/healthz")[0] == 200
        except OSError:
            return False

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def connection(self, *, timeout_seconds: float = 10.0) -> http.client.HTTPConnection:
        if self.ca_file is None:
            return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout_seconds)
        return http.client.HTTPSConnection(
            "127.0.0.1", self.port, timeout=timeout_seconds, context=self.client_context()
        )

    def get(self, path: str) -> tuple[int, bytes]:
        conn = self.connection(timeout_seconds=2)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def post(
        self, path: str, body: bytes, conn: http.client.HTTPConnection | None = None
    ) -> tuple[int, Any]:
        own = conn is None
        conn = conn or self.connection()
        try:
            conn.request("POST", path, body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            return response.status, json.loads(response.read())
        finally:
            if own:
                conn.close()

    def reviews(self) -> float:
        """How many admission requests this server has answered (its own metrics)."""
        _, body = self.get("/metrics")
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in body.decode().splitlines()
            if line.startswith("headroom_webhook_requests_total{")
        )

    def log_lines(self, which: str = "stdout") -> list[dict[str, Any]]:
        path = self.stdout if which == "stdout" else self.stderr
        lines = []
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                lines.append(json.loads(line))
        return lines

    def stop(self, *, timeout_seconds: float = 30.0) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_seconds)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout_seconds)
        return self.process.returncode


def webhook_server(
    workdir: Path, profiles: Path, *, certs: Path | None, extra: Sequence[str] = ()
) -> Server:
    port = free_port()
    argv = [
        str(HEADROOM),
        "webhook",
        "--profiles",
        str(profiles),
        "--bind",
        f"127.0.0.1:{port}",
        *extra,
    ]
    if certs is not None:
        argv += ["--certfile", str(certs / "tls.crt"), "--keyfile", str(certs / "tls.key")]
    return Server(
        argv=argv,
        workdir=workdir,
        port=port,
        ca_file=certs / "ca.crt" if certs is not None else None,
    )


def serving_server(workdir: Path, app: str, *, certs: Path | None, **options: Any) -> Server:
    """Any WSGI app under serving.server.run, with ServeOptions keywords."""
    port = free_port()
    tls = {"certfile": str(certs / "tls.crt"), "keyfile": str(certs / "tls.key")} if certs else {}
    settings = {"app": app, "bind": f"127.0.0.1:{port}", **tls, **options}
    code = (
        "import sys\nfrom serving import server as serving\n"
        f"sys.exit(serving.run(serving.ServeOptions(**{settings!r})))\n"
    )
    return Server(
        argv=[sys.executable, "-c", code],
        workdir=workdir,
        port=port,
        ca_file=certs / "ca.crt" if certs is not None else None,
    )
