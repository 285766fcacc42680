"""Probes run as the kubelet runs them, against a process on this host.

`translate` turns a container's probe (httpGet, tcpSocket, exec) into what to run here: an
httpGet or tcpSocket goes to the pod's IP (this host's) and the port, a named port looked up in
the container's ports; an exec command runs as a process of the container (its environment, its
mount paths rewritten). `ProbeTracker` applies the timing (initialDelaySeconds, periodSeconds)
and the thresholds (successThreshold, failureThreshold) to the results, with the time passed in,
so both are pure; `run_probe` does the one check.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tooling.podrunner_env import JsonDict, MountMap, SpecError


@dataclass(frozen=True)
class Timing:
    """A probe's schedule and thresholds, with the API's defaults."""

    initial_delay_seconds: float = 0.0
    period_seconds: float = 10.0
    timeout_seconds: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3

    @classmethod
    def of(cls, spec: JsonDict) -> Timing:
        return cls(
            initial_delay_seconds=float(spec.get("initialDelaySeconds", 0)),
            period_seconds=float(spec.get("periodSeconds", 10)),
            timeout_seconds=float(spec.get("timeoutSeconds", 1)),
            success_threshold=int(spec.get("successThreshold", 1)),
            failure_threshold=int(spec.get("failureThreshold", 3)),
        )


@dataclass(frozen=True)
class Probe:
    """One probe as it runs here: `url` (httpGet), `address` (tcpSocket) or `command` (exec)."""

    kind: str  # "http", "tcp" or "exec"
    timing: Timing = Timing()
    url: str = ""
    address: tuple[str, int] = ("", 0)
    command: tuple[str, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()


def container_port(container: JsonDict, port: int | str, *, where: str) -> int:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    if port.isdigit():
        return int(port)
    for declared in container.get("ports") or []:
        if declared.get("name") == port:
            return int(declared["containerPort"])
    raise SpecError(where, f"port {port!r}: the container declares no port of that name")


def translate(
    spec: JsonDict, container: JsonDict, *, pod_ip: str, mounts: MountMap, where: str
) -> Probe:
    timing = Timing.of(spec)
    if "httpGet" in spec:
        get = spec["httpGet"]
        port = container_port(container, get["port"], where=f"{where}.httpGet.port")
        scheme = str(get.get("scheme", "HTTP")).lower()
        host = get.get("host") or pod_ip
        path = get.get("path", "/")
        headers = tuple((h["name"], h["value"]) for h in get.get("httpHeaders") or [])
        url = f"{scheme}://{host}:{port}{path if path.startswith('/') else '/' + path}"
        return Probe("http", timing, url=url, headers=headers)
    if "tcpSocket" in spec:
        tcp = spec["tcpSocket"]
        port = container_port(container, tcp["port"], where=f"{where}.tcpSocket.port")
        return Probe("tcp", timing, address=(tcp.get("host") or pod_ip, port))
    if "exec" in spec:
        command = tuple(mounts.rewrite(word) for word in spec["exec"].get("command") or [])
        if not command:
            raise SpecError(f"{where}.exec.command", "empty")
        return Probe("exec", timing, command=command)
    kinds = ", ".join(sorted(k for k in spec if k in {"grpc", "httpGet", "tcpSocket", "exec"}))
    raise SpecError(
        where, f"probe handler {kinds or 'none'}: podrunner runs httpGet, tcpSocket, exec"
    )


class ProbeTracker:
    """The kubelet's bookkeeping for one probe: when it is due, and its verdict from the
    consecutive results (`succeeded` flips after successThreshold passes, `failed` after
    failureThreshold failures). `started` is when the container started (monotonic seconds)."""

    def __init__(self, probe: Probe, *, started: float, succeeded: bool = False) -> None:
        self.probe = probe
        self.next_at = started + probe.timing.initial_delay_seconds
        self.succeeded = succeeded
        self.failed = False
        self.passes = 0
        self.failures = 0
        self.last_message = ""

    def due(self, now: float) -> bool:
        return now >= self.next_at

    def record(self, ok: bool, now: float, *, message: str = "") -> None:
        self.next_at = now + self.probe.timing.period_seconds
        self.last_message = message
        if ok:
            self.passes, self.failures = self.passes + 1, 0
            if self.passes >= self.probe.timing.success_threshold:
                self.succeeded, self.failed = True, False
        else:
            self.passes, self.failures = 0, self.failures + 1
            if self.failures >= self.probe.timing.failure_threshold:
                self.succeeded, self.failed = False, True


def _insecure_context() -> ssl.SSLContext:
    # The kubelet does not verify a probe's certificate either: it is the pod's own.
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    return context


def run_probe(probe: Probe, *, env: Mapping[str, str], cwd: Path) -> tuple[bool, str]:
    """Run `probe` once: (passed, what went wrong). HTTP passes on a status from 200 to 399."""
    try:
        if probe.kind == "http":
            request = urllib.request.Request(probe.url, headers=dict(probe.headers))  # noqa: S310
            with urllib.request.urlopen(  # noqa: S310 - the pod's own address
                request, timeout=probe.timing.timeout_seconds, context=_insecure_context()
            ) as response:
                status = int(response.status)
            return 200 <= status < 400, f"HTTP {status}"
        if probe.kind == "tcp":
            with socket.create_connection(probe.address, timeout=probe.timing.timeout_seconds):
                return True, ""
        result = subprocess.run(
            list(probe.command),
            env=dict(env),
            cwd=cwd,
            capture_output=True,
            timeout=probe.timing.timeout_seconds,
            check=False,
        )
        output = (result.stdout + result.stderr).decode(errors="replace").strip()
        return result.returncode == 0, f"exit {result.returncode}: {output[-300:]}"
    except urllib.error.HTTPError as exc:
        return 200 <= exc.code < 400, f"HTTP {exc.code}"
    except subprocess.TimeoutExpired:
        return False, f"timed out after {probe.timing.timeout_seconds:g}s"
    except OSError as exc:
        return False, str(exc)
