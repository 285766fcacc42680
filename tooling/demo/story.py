"""The demo's story: one look at the cluster (`observe`), and the load timeline that moves from
phase to phase when the cluster shows what the phase waits for. The objects it deploys are in
`tooling.demo.objects`. Phases wait on the cluster, not on the clock (a loaded machine only makes
them slower), each within its timeout.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from cli.status import GpuRow, gather
from headroom import names
from headroom.report import ReportError, report_from_status
from kubeapi.client import ApiError, Kube
from tooling.demo import dra
from tooling.demo.kubelet import Kubelet, LoadBoard
from tooling.demo.model import Phase, Scenario
from tooling.demo.nodes import SimNode
from tooling.demo.objects import APP_LABEL, start_workload
from tooling.demo.summary import Record


# -- looking -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PodView:
    name: str
    app: str
    node: str
    gpus: str  # "3" or "0,1"; "" before the pod is seen on its GPUs
    phase: str
    ready: bool
    terminating: bool


@dataclass
class Observation:
    seconds: float  # since the story began
    phase: str
    load: float
    gpus: list[GpuRow]
    pods: list[PodView]
    scaler: dict[str, Any]  # the AIScaler's status
    gpu_pods: dict[tuple[str, int], list[str]] = field(default_factory=dict)
    held: list[dra.Held] = field(default_factory=list)  # GPUs the pods' DRA claims hold
    notes: list[str] = field(default_factory=list)  # what the story did, newest last

    def condition(self, kind: str) -> dict[str, Any]:
        for c in self.scaler.get("conditions") or []:
            if c.get("type") == kind:
                return dict(c)
        return {}

    @property
    def limited(self) -> tuple[str, str] | None:
        c = self.condition("ScalingLimited")
        return (str(c.get("reason")), str(c.get("message"))) if c.get("status") == "True" else None

    def replicas(self, key: str) -> int | None:
        value = self.scaler.get(key)
        return value if isinstance(value, int) else None

    def model_pods(self, app: str) -> list[PodView]:
        return [p for p in self.pods if p.app == app]

    def ready(self, app: str) -> int:
        return sum(1 for p in self.model_pods(app) if p.ready and not p.terminating)


def observe(
    kube: Kube,
    scenario: Scenario,
    *,
    phase: str,
    load: float,
    started: float,
    nodes: Mapping[str, SimNode] | None = None,
) -> Observation:
    ns = scenario.namespace
    gpus, _ = gather(kube, now_unix_seconds=time.time())
    where: dict[str, list[tuple[str, int]]] = {}  # pod uid -> [(node, gpu)] from the reports
    for obj in kube.request("GET", f"/apis/{names.GROUP_VERSION}/{names.GPUNODE_PLURAL}")["items"]:
        try:
            report = report_from_status(obj["metadata"]["name"], obj.get("status") or {})
        except ReportError:
            continue
        for gpu in report.gpus:
            for p in gpu.pods:
                where.setdefault(p.uid, []).append((report.node_name, gpu.index))
    pods: list[PodView] = []
    gpu_pods: dict[tuple[str, int], list[str]] = {}
    items = kube.request("GET", f"/api/v1/namespaces/{ns}/pods")["items"]
    held: list[dra.Held] = []
    if scenario.uses_dra:
        claims = kube.request("GET", f"{dra.RESOURCE}/namespaces/{ns}/resourceclaims")["items"]
        held = dra.held(items, claims, dra.devices(kube), nodes or {})
    for pod in items:
        meta, status = pod["metadata"], pod.get("status") or {}
        seen = where.get(meta["uid"], [])
        for spot in seen:
            gpu_pods.setdefault(spot, []).append(meta["name"])
        pods.append(
            PodView(
                name=meta["name"],
                app=(meta.get("labels") or {}).get(APP_LABEL, ""),
                node=(pod.get("spec") or {}).get("nodeName") or "",
                gpus=",".join(str(g) for _, g in sorted(seen)),
                phase=status.get("phase", ""),
                ready=any(
                    c.get("type") == "Ready" and c.get("status") == "True"
                    for c in status.get("conditions") or []
                ),
                terminating=bool(meta.get("deletionTimestamp")),
            )
        )
    try:
        scaler = kube.request(
            "GET",
            f"/apis/{names.GROUP_VERSION}/namespaces/{ns}/"
            f"{names.AISCALER_PLURAL}/{scenario.scaler.name}",
        )
    except ApiError:
        scaler = {}
    return Observation(
        seconds=time.monotonic() - started,
        phase=phase,
        load=load,
        gpus=gpus,
        pods=sorted(pods, key=lambda p: (p.app, p.name)),
        scaler=scaler.get("status") or {},
        gpu_pods=gpu_pods,
        held=held,
    )


# -- the timeline --------------------------------------------------------------------------------
def met(phase: Phase, obs: Observation, *, scenario: Scenario, record: Record) -> bool:
    """Whether the cluster shows what the phase waits for."""
    app = scenario.model.name
    applied = obs.replicas("appliedReplicas")
    model = obs.model_pods(app)
    running = obs.ready(app) == applied and len(model) == applied
    if phase.until == "capped":
        limited = obs.limited
        return (
            limited is not None
            and limited[0] == "InsufficientGPUHeadroom"
            and running
            and applied == obs.replicas("feasibleReplicas")
        )
    if phase.until == "lifted":
        return record.cap is not None and applied is not None and applied > record.cap and running
    if phase.until == "settled":
        wanted = scenario.scaler.replicas_for(obs.load)
        return (
            running
            and obs.replicas("desiredReplicas") == wanted
            and applied == wanted
            and not any(p.terminating for p in model)
        )
    return False


def started_ok(obs: Observation, scenario: Scenario) -> bool:
    """Before the timeline: every workload pod and the first model replicas running, and the
    AIScaler has made its first decision."""
    later = scenario.started_later()
    workloads = {w.name: w.parallelism for w in scenario.workloads if w.name not in later}
    running = {
        name: sum(1 for p in obs.pods if p.app == name and p.phase == "Running")
        for name in workloads
    }
    return (
        all(running[n] >= count for n, count in workloads.items())
        and obs.ready(scenario.model.name) >= scenario.model.replicas
        and obs.replicas("appliedReplicas") is not None
    )


@dataclass
class Story:
    kube: Kube
    scenario: Scenario
    kubelet: Kubelet
    board: LoadBoard
    nodes: dict[str, SimNode]
    record: Record
    show: Callable[[Observation], None]
    health: Callable[[], None] = lambda: None  # raises when a process the demo needs died
    tell: Callable[[str], None] = lambda text: None  # each note as it happens
    started: float = field(default_factory=time.monotonic)
    tick_seconds: float = 1.0
    last: Observation | None = None
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        self.notes.append(f"{time.monotonic() - self.started:4.0f}s  {text}")
        self.tell(self.notes[-1])

    def look(self, phase: str) -> Observation | None:
        self.health()
        try:
            obs = observe(
                self.kube,
                self.scenario,
                phase=phase,
                load=self.board.total,
                started=self.started,
                nodes=self.nodes,
            )
        except ApiError:
            return None  # the next tick looks again
        self.record.update(
            obs,
            running=self.kubelet.running(),
            nodes=self.nodes,
            failures=self.kubelet.admission_failures,
        )
        obs.notes = self.notes[-4:]
        self.last = obs
        self.show(obs)
        return obs

    def wait(
        self,
        name: str,
        check: Callable[[Observation], bool],
        *,
        hold_seconds: float,
        timeout_seconds: float,
    ) -> bool:
        """Look every tick until `check` has held for `hold_seconds`; False after the timeout."""
        begin = time.monotonic()
        since: float | None = None
        while True:
            obs = self.look(name)
            now = time.monotonic()
            if obs is not None and check(obs):
                since = since if since is not None else now
                if now - since >= hold_seconds:
                    return True
            if now - begin > timeout_seconds:
                return False
            time.sleep(max(0.0, self.tick_seconds - (time.monotonic() - now)))

    def run(self) -> bool:
        """Start, then every phase in order; stops at the first phase that times out."""
        scenario = self.scenario
        ok = self.wait(
            "start", lambda o: started_ok(o, scenario), hold_seconds=0, timeout_seconds=180
        )
        self.record.phase_done("start", ok, time.monotonic() - self.started)
        for phase in scenario.timeline if ok else ():
            began = time.monotonic()
            if phase.load is not None:
                self.board.total = phase.load
            self.note(
                f"phase {phase.name}: load {self.board.total:g} waiting requests, "
                f"until {phase.until}"
            )
            for action in phase.actions:
                self.act(action.kind, action.target)
            if phase.until == "seconds":
                ok = self.wait(
                    phase.name,
                    _always,
                    hold_seconds=phase.seconds,
                    timeout_seconds=phase.seconds + 30,
                )
            else:
                check = partial(met, phase, scenario=scenario, record=self.record)
                ok = self.wait(
                    phase.name,
                    check,
                    hold_seconds=phase.seconds,
                    timeout_seconds=phase.timeout_seconds,
                )
            self.record.phase_done(phase.name, ok, time.monotonic() - began, until=phase.until)
            if not ok:
                break
        return ok

    def act(self, kind: str, target: str) -> None:
        self.note(
            {
                "start": f"Job {target} starts",
                "finish": f"Job {target} finishes: its pods complete",
                "endOutside": f"{target}, outside Kubernetes, ends: its GPU memory frees",
            }[kind]
        )
        if kind == "start":
            start_workload(self.kube, self.scenario, target)
            return
        self.record.capacity_freed()
        if kind == "finish":
            self.kubelet.finish(target)
            return
        for node in self.nodes.values():
            node.remove_owner(f"outside:{target}")


def _always(obs: Observation) -> bool:
    return True
