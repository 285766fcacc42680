"""Stand-ins the scaler's tests talk to: a model server exposing vLLM's queue-depth gauge (or a
chosen failure), and a real Prometheus (Debian's package) on loopback scraping such servers."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

from tooling.process import free_port

QUEUE = "vllm:num_requests_waiting"


class ModelServer:
    """A stand-in model server: `/metrics` with a queue-depth gauge, or a chosen failure."""

    def __init__(
        self,
        *,
        waiting: float,
        behaviour: str = "ok",
        host: str = "127.0.0.1",
        port: int | None = None,
    ) -> None:
        self.waiting = waiting
        self.behaviour = behaviour
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if server.behaviour == "hang":
                    server.release.wait(30)
                if server.behaviour == "error":
                    self.send_error(500)
                    return
                body = (
                    f"# TYPE {QUEUE} gauge\n"
                    f'{QUEUE}{{model_name="llama"}} {server.waiting}\n'
                    f'{QUEUE}{{model_name="lora"}} 1\n'
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.port = port or free_port()
        self.httpd = ThreadingHTTPServer((host, self.port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@contextmanager
def running_prometheus(
    targets: Sequence[str], *, port: int | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A Prometheus scraping `targets` (host:port) every second; yields (its URL, the process)."""
    binary = shutil.which("prometheus") or "/usr/bin/prometheus"
    assert Path(binary).exists(), "prometheus missing: scripts/install-system-deps.sh installs it"
    workdir = Path(tempfile.mkdtemp(prefix="prometheus-"))
    config = {
        "global": {"scrape_interval": "1s"},
        "scrape_configs": [{"job_name": "models", "static_configs": [{"targets": list(targets)}]}],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = port or free_port()
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield f"http://127.0.0.1:{port}", process
    finally:
        process.kill()
        process.wait(30)
        shutil.rmtree(workdir, ignore_errors=True)
