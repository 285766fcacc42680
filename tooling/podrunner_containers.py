"""One container of a pod as a local process: started, watched, probed, restarted, stopped.

A `Container` starts its process from what `tooling.podrunner_env` resolves (argv, environment;
the program looked up in the image's directories on this host), in a session of its own (so
stopping signals gunicorn's workers too) that dies with the podrunner. Output goes to one log
file per container, appended across restarts. An exit is recorded as the kubelet records it
(terminated, then lastState once restarted, the log's tail as the message on an error, as
`FallbackToLogsOnError` would) and the process restarted after a doubling back-off. Its probes
(startup, readiness, liveness) run when due; a failed liveness or startup probe restarts it.
Before it starts, each declared TCP port must be free on this host: every pod shares the host's
network here, so two pods asking for one port is an error the status names.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from headroom.clock import format_time
from tooling.podrunner_env import JsonDict, SpecError
from tooling.podrunner_probes import Probe, ProbeTracker, run_probe
from tooling.podrunner_status import ContainerView
from tooling.process import Process, die_with_parent


@dataclass(frozen=True)
class Launch:
    """How to start one container here: argv, environment, working directory, log file, and
    the preStop exec hook's command (empty: none), resolved as the argv is."""

    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: Path
    log_path: Path
    pre_stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class Backoff:
    """The restart delay: `initial_seconds`, doubled on each restart up to `max_seconds` (the
    kubelet's is 10 s to 5 min; shorter here, so a test sees a crash loop within its time)."""

    initial_seconds: float = 1.0
    max_seconds: float = 30.0

    def delay(self, restarts: int) -> float:
        return min(self.max_seconds, self.initial_seconds * 2.0 ** max(0, restarts - 1))


DEFAULT_BACKOFF = Backoff()


def port_problem(container: JsonDict) -> str | None:
    """Why `container` cannot listen on its declared TCP ports here, or None."""
    for declared in container.get("ports") or []:
        if declared.get("protocol", "TCP") != "TCP":
            continue
        port = int(declared["containerPort"])
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            # As the servers themselves bind: a port in TIME_WAIT is free to them.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("0.0.0.0", port))  # noqa: S104 - what the pod will bind
            except OSError:
                return (
                    f"port {port} ({declared.get('name') or 'unnamed'}) is taken on this host: "
                    "podrunner runs every pod in the host's network, so no two pods (nor a pod "
                    "and another process) can listen on one port; run one replica per port"
                )
    return None


def which(program: str, path: str, *, where: str) -> str:
    """`program` (argv[0]) found on the container's PATH; SpecError naming it otherwise."""
    found = shutil.which(program, path=path) if "/" not in program else program
    if found is None or not Path(found).exists():
        raise SpecError(
            where,
            f"{program!r}: not found in the image's directories ({path})",
            reason="RunContainerError",
        )
    return found


class Container:
    """The lifecycle of one container's process; the pod worker drives it with `step()`."""

    def __init__(self, spec: JsonDict, *, where: str, sidecar: bool, backoff: Backoff) -> None:
        self.spec, self.where, self.sidecar, self.backoff = spec, where, sidecar, backoff
        self.name: str = spec["name"]
        self.view = ContainerView(name=self.name, image=spec.get("image", ""))
        self.process: Process | None = None
        self.launch: Launch | None = None
        self.probes: dict[str, ProbeTracker] = {}
        self.restart_at = 0.0
        self.exited = False  # ran and ended, not restarted yet
        self.ever_started = False  # started (its startup probe passed) at least once

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.alive()

    def wait(self, reason: str, message: str) -> None:
        """Not started, and why (the kubelet's waiting reasons: ContainerCreating,
        CreateContainerConfigError, ...)."""
        self.view.state, self.view.reason, self.view.message = "waiting", reason, message

    def start(self, launch: Launch, probes: Mapping[str, Probe]) -> bool:
        """Start the process; False (and waiting, reason PortInUse) when a declared port is
        taken."""
        problem = port_problem(self.spec)
        if problem:
            self.wait("PortInUse", problem)
            return False
        launch.log_path.parent.mkdir(parents=True, exist_ok=True)
        launch.cwd.mkdir(parents=True, exist_ok=True)
        with launch.log_path.open("ab") as log:
            log.write(f"--- podrunner: starting {list(launch.argv)}\n".encode())
            log.flush()
            popen = subprocess.Popen(
                list(launch.argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(launch.env),
                cwd=launch.cwd,
                start_new_session=True,
                preexec_fn=die_with_parent,  # noqa: PLW1509 - the pod's thread outlives it
            )
        self.process = Process(self.name, popen, launch.log_path, own_group=True)
        self.launch, self.exited = launch, False
        now = time.monotonic()
        self.probes = {kind: ProbeTracker(p, started=now) for kind, p in probes.items()}
        has_startup = "startup" in self.probes
        self.view.state, self.view.reason, self.view.message = "running", "", ""
        self.view.started_at = format_time(time.time())
        self.view.container_id = f"podrunner://{popen.pid}"
        self.view.started = not has_startup
        self.view.ready = not has_startup and "readiness" not in self.probes
        self.ever_started = self.ever_started or self.view.started
        return True

    def check_exit(self) -> bool:
        """True when the process has just exited (recorded, restart scheduled)."""
        if self.process is None or self.exited or self.process.alive():
            return False
        code = self.process.popen.returncode
        code = 128 - code if code < 0 else code  # killed by signal N: 128+N, as runtimes say
        # FallbackToLogsOnError: the log's tail, within the API's bound on a message.
        message = "" if code == 0 else self.process.log_tail(10)[-2048:]
        self.view.terminate(exit_code=code, finished_at=format_time(time.time()), message=message)
        self.view.started = False
        self.exited = True
        self.restart_at = time.monotonic() + self.backoff.delay(self.view.restart_count + 1)
        return True

    def may_restart(self, restart_policy: str) -> bool:
        if not self.exited or time.monotonic() < self.restart_at:
            return False
        if self.sidecar or restart_policy == "Always":
            return True
        return restart_policy == "OnFailure" and self.view.exit_code != 0

    def restart(self, launch: Launch, probes: Mapping[str, Probe]) -> bool:
        if not self.start(launch, probes):
            return False
        self.view.restart_count += 1
        return True

    def run_probes(self) -> None:
        """Run the probes that are due; a startup or liveness failure kills the process (the
        exit is then recorded and restarted as any other)."""
        if not self.running or self.launch is None:
            return
        now = time.monotonic()
        startup = self.probes.get("startup")
        if startup is not None and not startup.succeeded:
            if startup.due(now):
                self._probe(startup)
            self.view.started = startup.succeeded
            self.ever_started = self.ever_started or startup.succeeded
            if startup.failed:
                self._kill(f"startup probe failed: {startup.last_message}")
            return
        self.view.started = True
        readiness = self.probes.get("readiness")
        if readiness is not None and readiness.due(now):
            self._probe(readiness)
        self.view.ready = readiness is None or readiness.succeeded
        liveness = self.probes.get("liveness")
        if liveness is not None and liveness.due(now):
            self._probe(liveness)
            if liveness.failed:
                self._kill(f"liveness probe failed: {liveness.last_message}")

    def _probe(self, tracker: ProbeTracker) -> None:
        if self.launch is not None:
            ok, message = run_probe(tracker.probe, env=self.launch.env, cwd=self.launch.cwd)
            tracker.record(ok, time.monotonic(), message=message)

    def _kill(self, why: str) -> None:
        if self.process is not None and self.launch is not None:
            with self.launch.log_path.open("ab") as log:
                log.write(f"--- podrunner: killing it: {why}\n".encode())
            self.process.stop(timeout_seconds=5)

    def stop(self, *, grace_seconds: float, pre_stop: bool) -> None:
        """The kubelet's termination: the preStop exec hook (when asked), SIGTERM, and SIGKILL
        once `grace_seconds` (the hook's time included) have passed."""
        if self.process is None:
            return
        deadline = time.monotonic() + grace_seconds
        launch = self.launch
        if pre_stop and self.running and launch is not None and launch.pre_stop:
            with contextlib.suppress(subprocess.TimeoutExpired, OSError):
                subprocess.run(
                    list(launch.pre_stop),
                    env=dict(launch.env),
                    cwd=launch.cwd,
                    capture_output=True,
                    timeout=grace_seconds,
                    check=False,
                )
        self.process.signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.popen.wait(max(0.0, deadline - time.monotonic()))
        self.process.stop(timeout_seconds=0)
