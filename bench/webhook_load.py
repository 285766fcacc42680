"""The load and the meters of bench/webhook.py: percentiles, the HTTPS load generators of (b)
(`wrk` when installed, else Python's http.client in two processes), the concurrent pod creates of
(c), and the CPU time of process groups read from /proc."""

from __future__ import annotations

import contextlib
import http.client
import json
import multiprocessing
import os
import re
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kubeapi.client import ApiError, Kube
from tests.webhook.helpers import corpus
from tests.webhook.server import Server

CONCURRENCY = 8


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def wrk_run(server: Server, path: str, body: bytes | None, seconds: float) -> tuple[float, float]:
    script = Path(tempfile.mkdtemp()) / "request.lua"
    lines = ['wrk.headers["Content-Type"] = "application/json"']
    if body is not None:
        lines += ['wrk.method = "POST"', f"wrk.body = {json.dumps(body.decode())}"]
    script.write_text("\n".join(lines) + "\n")
    result = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{CONCURRENCY}",
            f"-d{seconds:.0f}s",
            "--latency",
            "-s",
            str(script),
            f"https://127.0.0.1:{server.port}{path}",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    )
    out = result.stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw failed requests:\n{out}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99_text = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    assert p99_text is not None, out
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[p99_text.group(2)]
    return rate, float(p99_text.group(1)) * scale


def _python_client(
    port: int,
    ca_file: str,
    path: str,
    body: bytes | None,
    *,
    seconds: float,
    threads: int,
    results: Any,
) -> None:
    context = ssl.create_default_context(cafile=ca_file)
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def run() -> None:
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
        mine = []
        while time.monotonic() < deadline:
            started = time.perf_counter()
            conn.request(
                "POST" if body else "GET", path, body, {"Content-Type": "application/json"}
            )
            response = conn.getresponse()
            response.read()
            mine.append((time.perf_counter() - started) * 1000)
            if response.status != 200:
                errors[0] += 1
        conn.close()
        with lock:
            latencies.extend(mine)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    results.put((latencies, errors[0]))


def python_run(
    server: Server, path: str, body: bytes | None, seconds: float
) -> tuple[float, float]:
    queue: Any = multiprocessing.get_context("fork").Queue()
    processes = [
        multiprocessing.get_context("fork").Process(
            target=_python_client,
            args=(server.port, str(server.ca_file), path, body),
            kwargs={"seconds": seconds, "threads": CONCURRENCY // 2, "results": queue},
        )
        for _ in range(2)
    ]
    for process in processes:
        process.start()
    latencies: list[float] = []
    for _ in processes:
        found, errors = queue.get(timeout=seconds + 60)
        if errors:
            raise RuntimeError(f"{errors} requests failed")
        latencies += found
    for process in processes:
        process.join()
    return len(latencies) / seconds, percentile(latencies, 0.99)


def creates_per_second(kube: Kube, namespace: str, pods: int) -> float:
    template = corpus()["vllm"]
    template["metadata"].pop("name")
    template["metadata"].pop("namespace")
    template["metadata"]["generateName"] = "bench-"
    template["spec"]["automountServiceAccountToken"] = False
    body = json.dumps(template)
    errors: list[str] = []
    counter = iter(range(pods))
    lock = threading.Lock()

    def run() -> None:
        while True:
            with lock:
                if next(counter, None) is None:
                    return
            for attempt in range(3):
                try:
                    kube.request(
                        "POST", f"/api/v1/namespaces/{namespace}/pods", body=json.loads(body)
                    )
                    break
                except ApiError as exc:
                    # etcd on a busy shared machine now and then answers "please try again"
                    # (HTTP 500, ServerTimeout); that is the control plane's, not the webhook's.
                    if exc.status != 500 or attempt == 2:
                        errors.append(str(exc))
                        break

    threads = [threading.Thread(target=run) for _ in range(CONCURRENCY)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} creates failed, e.g. {errors[0]}")
    return pods / elapsed


class CpuMeter:
    """CPU time of named process groups (from /proc), per pod created, by phase."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self.totals: dict[tuple[str, str], float] = {}
        self.pods: dict[str, int] = {}

    def _seconds(self) -> dict[str, float]:
        return {name: sum(_cpu_seconds(pid) for pid in pids) for name, pids in self.groups.items()}

    @contextlib.contextmanager
    def measure(self, phase: str, pods: int) -> Iterator[None]:
        before = self._seconds()
        yield
        after = self._seconds()
        for name in self.groups:
            key = (phase, name)
            self.totals[key] = self.totals.get(key, 0.0) + after[name] - before[name]
        self.pods[phase] = self.pods.get(phase, 0) + pods

    def per_create(self) -> dict[str, float]:
        """Milliseconds of CPU per create, keyed "phase/group"."""
        return {
            f"{phase}/{name}": seconds * 1000 / self.pods[phase]
            for (phase, name), seconds in self.totals.items()
        }


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
            except OSError:
                continue
            if parent == str(pid):
                found.append(int(entry.name))
    return found
