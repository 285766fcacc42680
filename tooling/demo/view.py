"""The demo's live view: per node the GPU headroom, the model's pods and where they landed, and
the scaler's desired / feasible / applied replicas with the reason it is limited.

`frame()` is pure (an observation in, lines out). `Display` redraws the frame in place about once
a second on a terminal (plain ANSI: cursor home, clear, colours); when stdout is not a terminal
(CI, a pipe) it prints one plain line every few seconds and at every phase change instead.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TextIO

from cli.status import GpuRow
from tooling.demo.dra import Held
from tooling.demo.model import Scenario
from tooling.demo.story import Observation, PodView

GIB = 2**30
RESET, BOLD, DIM, RED, GREEN, YELLOW = (
    "\x1b[0m",
    "\x1b[1m",
    "\x1b[2m",
    "\x1b[31m",
    "\x1b[32m",
    "\x1b[33m",
)
MAX_POD_ROWS = 22


def _n(value: int | None) -> str:
    return "-" if value is None else str(value)


def scaler_line(obs: Observation, scenario: Scenario) -> str:
    ready = obs.ready(scenario.model.name)
    limited = obs.limited
    why = f"limited: {limited[0]}: {limited[1]}" if limited else "not limited"
    return (
        f"AIScaler {scenario.scaler.name}: desired {_n(obs.replicas('desiredReplicas'))}  "
        f"feasible {_n(obs.replicas('feasibleReplicas'))}  "
        f"applied {_n(obs.replicas('appliedReplicas'))}  ready {ready}  | {why}"
    )


def _gpu_cell(row: GpuRow, *, pods: int, scenario: Scenario, colour: bool) -> str:
    if not row.healthy:
        text, tint = f"{row.gpu}:LOST", RED
    else:
        text = f"{row.gpu}:{row.free_bytes / GIB:.0f}{'*' if pods else ''}"
        ask = scenario.model.ask
        room = row.free_bytes >= ask.memory_bytes and (ask.sharing or not pods)
        tint = GREEN if room else YELLOW if row.free_bytes else RED
    return f"{tint}{text:<7}{RESET}" if colour else f"{text:<7}"


def gpu_lines(obs: Observation, scenario: Scenario, *, colour: bool) -> list[str]:
    by_node: dict[str, list[GpuRow]] = {}
    for row in obs.gpus:
        by_node.setdefault(row.node, []).append(row)
    legend = "green: room for one more replica" if colour else ""
    lines = [
        f"GPU headroom, free GiB per GPU (*: pods on it; {legend or 'LOST: unhealthy'}; "
        f"a replica needs {scenario.model.ask.memory}"
        f"{' shared' if scenario.model.ask.sharing else ' on a GPU of its own'})"
    ]
    dra = {n for g in scenario.nodes if g.dra for n in g.node_names()}
    for node in scenario.node_names():
        gpus = sorted(by_node.get(node, []), key=lambda r: r.gpu)
        if not gpus:
            lines.append(f"  {node:<12} (no GPU report yet)")
            continue
        age = max(r.report_age_seconds for r in gpus)
        model = gpus[0].model.removeprefix("NVIDIA ")
        total = f"{model[:16]:<16} {gpus[0].total_bytes / GIB:.0f}Gi"
        cells = " ".join(
            _gpu_cell(
                r, pods=len(obs.gpu_pods.get((node, r.gpu), [])), scenario=scenario, colour=colour
            )
            for r in gpus
        )
        how = "  DRA (ResourceSlice; no replicas)" if node in dra else ""
        lines.append(f"  {node:<12} {total:<24} {cells}  report {age:.0f}s{how}")
    return lines


def pod_lines(pods: Sequence[PodView], scenario: Scenario, held: Sequence[Held] = ()) -> list[str]:
    model = [p for p in pods if p.app == scenario.model.name]
    lines = [
        f"{scenario.model.name} pods: {len(model)}",
        f"  {'POD':<34} {'NODE':<12} {'GPUS':<8} {'PHASE':<12} READY",
    ]
    for pod in model[:MAX_POD_ROWS]:
        phase = "Terminating" if pod.terminating else pod.phase or "Pending"
        lines.append(
            f"  {pod.name:<34} {pod.node or '-':<12} {pod.gpus or '-':<8} "
            f"{phase:<12} {'yes' if pod.ready else 'no'}"
        )
    if len(model) > MAX_POD_ROWS:
        lines.append(f"  ... and {len(model) - MAX_POD_ROWS} more")
    claimed: dict[str, list[str]] = {}
    for h in held:
        claimed.setdefault(h.pod, []).append("?" if h.gpu is None else str(h.gpu))
    others = [p for p in pods if p.app != scenario.model.name]
    if others:
        lines.append(
            "other GPU pods (claim: GPUs from a DRA ResourceClaim): "
            + "; ".join(
                f"{p.name} on {p.node or '-'} "
                f"[{'claim ' + ','.join(claimed[p.name]) if p.name in claimed else p.gpus or '-'}] "
                f"{p.phase or 'Pending'}"
                for p in others
            )
        )
    return lines


def frame(obs: Observation, scenario: Scenario, *, colour: bool = False) -> list[str]:
    bold = (lambda s: f"{BOLD}{s}{RESET}") if colour else (lambda s: s)
    head = (
        f"Headroom demo · scenario {scenario.name} · phase {obs.phase} · "
        f"{obs.seconds:.0f}s · load {obs.load:g} waiting requests "
        f"(target {scenario.scaler.target_value:g} per replica)"
    )
    return [
        bold(head),
        scaler_line(obs, scenario),
        "",
        *gpu_lines(obs, scenario, colour=colour),
        "",
        *pod_lines(obs.pods, scenario, obs.held),
        "",
        *(["story:", *(f"  {n}" for n in obs.notes), ""] if obs.notes else []),
        (
            f"{DIM}Ctrl-C stops the demo and everything it started{RESET}"
            if colour
            else "Ctrl-C stops the demo and everything it started"
        ),
    ]


def plain_line(obs: Observation, scenario: Scenario) -> str:
    limited = obs.limited
    return (
        f"[{obs.seconds:4.0f}s] {obs.phase:<10} load {obs.load:<5g} "
        f"desired {_n(obs.replicas('desiredReplicas'))} "
        f"feasible {_n(obs.replicas('feasibleReplicas'))} "
        f"applied {_n(obs.replicas('appliedReplicas'))} "
        f"ready {obs.ready(scenario.model.name)} "
        f"placed {sum(1 for p in obs.pods if p.node)}"
        + (f" | limited {limited[0]}: {limited[1]}" if limited else "")
    )


class Display:
    def __init__(
        self, stream: TextIO, scenario: Scenario, *, live: bool, plain_interval_seconds: float = 5.0
    ) -> None:
        self.stream = stream
        self.scenario = scenario
        self.live = live
        self.plain_interval_seconds = plain_interval_seconds
        self._last_plain = 0.0
        self._last_phase = ""

    def message(self, text: str) -> None:
        self.stream.write(f"{text}\n")
        self.stream.flush()

    def note(self, text: str) -> None:
        """A story step: in the live view it shows in the next frame; otherwise printed now."""
        if not self.live:
            self.message(f"story: {text.strip()}")

    def show(self, obs: Observation) -> None:
        if self.live:
            self.stream.write(
                "\x1b[H\x1b[2J" + "\n".join(frame(obs, self.scenario, colour=True)) + "\n"
            )
            self.stream.flush()
            return
        now = time.monotonic()
        if obs.phase != self._last_phase or now - self._last_plain >= self.plain_interval_seconds:
            self._last_phase, self._last_plain = obs.phase, now
            self.message(plain_line(obs, self.scenario))

    def final(self, obs: Observation | None) -> None:
        """The last state in full, in plain text, above the summary."""
        if obs is not None and not self.live:
            self.message("\n".join(frame(obs, self.scenario)))
