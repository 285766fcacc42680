"""Child processes on loopback, for the local control plane, the demo and the tests: free ports,
processes that die with their parent, waiting for them to answer, and GETs from components that
serve HTTPS with their own self-signed certificate."""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import signal
import socket
import ssl
import subprocess
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tooling.waiting import poll


class ClusterError(RuntimeError):
    """The control plane could not be started; the message names the process and its log."""


def free_port() -> int:
    """A loopback port nothing listens on, chosen below the kernel's ephemeral range.

    Asking the kernel for port 0 would hand out an ephemeral port, which any outgoing connection
    may take too before the caller binds it; ports below that range are only ever taken by
    listeners, so the one chosen stays free unless another listener picks the same at random.
    """
    low, _ = _ephemeral_range()
    upper = low if low > 11000 else 65536  # an unusual range: then any port will have to do
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(10000, upper)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise ClusterError("no free loopback port found below the ephemeral range")


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def die_with_parent() -> None:
    # Runs in the child between fork and exec: ask the kernel to SIGKILL it if the parent dies.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG


@dataclass
class Process:
    """A child process with its log file. `own_group`: it leads its own process group (started
    in a new session), so stopping signals the group and takes its workers along too."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    port: int | None = None  # where it serves health and metrics, for those that do
    own_group: bool = False

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if self.own_group:
                os.killpg(self.pid, signum)
            elif self.alive():
                self.popen.send_signal(signum)

    def stop(self, timeout_seconds: float = 15.0) -> None:
        """SIGTERM, then SIGKILL if it is still there after `timeout_seconds`. A group is
        killed either way: its leader gone, workers may linger."""
        if not self.alive() and not self.own_group:
            return
        self.signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout_seconds)
        self.signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)


def wait_for(
    check: Callable[[], bool],
    *,
    timeout_seconds: float,
    what: str,
    interval_seconds: float = 0.2,
    alive: Callable[[], bool] = lambda: True,
) -> None:
    """Poll `check` until it is true; raise ClusterError after the deadline or if `alive` fails."""
    if poll(
        check,
        timeout_seconds=timeout_seconds,
        interval_seconds=interval_seconds,
        ignore=(OSError,),
        give_up=lambda: not alive(),
    ):
        return
    if not alive():
        raise ClusterError(f"{what}: the process exited")
    raise ClusterError(f"{what}: not ready after {timeout_seconds:.0f}s")


def secure_healthz(port: int) -> bool:
    """True when a component serving HTTPS with its own self-signed certificate on loopback
    `port` answers /healthz with ok."""
    return secure_get(port, "/healthz") == b"ok"


def secure_get(port: int, path: str) -> bytes:
    """GET `path` from a component serving HTTPS with its own self-signed certificate on
    loopback `port`; b"" when it does not answer."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # self-signed, ours
    return http_get(f"https://127.0.0.1:{port}{path}", context=context)


def http_get(
    url: str, *, context: ssl.SSLContext | None = None, timeout_seconds: float = 2.0
) -> bytes:
    try:
        with urllib.request.urlopen(  # noqa: S310 - fixed loopback URLs
            url,
            timeout=timeout_seconds,
            context=context,
        ) as response:
            body: bytes = response.read()
            return body
    except OSError:
        return b""
