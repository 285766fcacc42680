"""What the demo saw (`Record`, updated every look) and the end summary with its checks.

Overcommits are computed here independently of Headroom's own accounting: from where the
simulated kubelet really put each pod (the GPUs in `headroom.dev/assigned-gpus` for shared pods,
the devices the simulated device plugin gave exclusive ones, the GPUs a DRA pod's allocated
claims hold), the pods' declared memory (for a claim pod, the larger of its annotation and its
claim's memory share), the memory held outside Kubernetes and each GPU's total. A GPU whose pods
and outside processes need more than it has (a GPU given to a claim whose live memory could not
hold it among them), an exclusive GPU with a second pod on it, a pod on a lost GPU, or a pod the
node could not admit, each counts as one.

The GPUs DRA claims held (pod, claim, GPU UUID and index), as the claims' allocations and the
ResourceSlices named them at each look, are listed too.
"""

from __future__ import annotations

import json
import textwrap
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headroom.quantity import format_bytes

if TYPE_CHECKING:  # only for annotations: story imports this module
    from tooling.demo.dra import Held
    from tooling.demo.kubelet import RunningPod
    from tooling.demo.nodes import SimNode
    from tooling.demo.story import Observation

INSUFFICIENT = "InsufficientGPUHeadroom"


@dataclass
class PhaseResult:
    name: str
    ok: bool
    seconds: float
    until: str = ""


@dataclass
class Record:
    model: str
    max_replicas: int
    placed: dict[str, str] = field(default_factory=dict)  # pod name -> app
    peak_applied: int = 0
    peak_ready: int = 0
    cap_reached: bool = False
    cap: int | None = None  # the replicas the GPU cap held the scaler at, before capacity freed
    cap_message: str = ""
    freed: bool = False
    lifted_to: int | None = None  # the most Ready replicas above that cap after capacity freed
    overcommits: dict[str, str] = field(default_factory=dict)
    phases: list[PhaseResult] = field(default_factory=list)
    held: dict[tuple[str, str, str], Held] = field(default_factory=dict)  # (pod, claim, uuid)

    def update(
        self,
        obs: Observation,
        *,
        running: Sequence[RunningPod],
        nodes: Mapping[str, SimNode],
        failures: Iterable[str],
    ) -> None:
        self.placed.update({p.name: p.app for p in obs.pods if p.node})
        self.held.update({(h.pod, h.claim, h.uuid): h for h in obs.held})
        applied = obs.replicas("appliedReplicas") or 0
        ready = obs.ready(self.model)
        self.peak_applied = max(self.peak_applied, applied)
        self.peak_ready = max(self.peak_ready, ready)
        limited = obs.limited
        if limited is not None and limited[0] == INSUFFICIENT:
            self.cap_reached = True
            if not self.freed and applied == obs.replicas("feasibleReplicas"):
                self.cap, self.cap_message = applied, limited[1]
        if self.freed and self.cap is not None and ready > self.cap:
            self.lifted_to = max(self.lifted_to or 0, ready)
        self.overcommits.update(overcommits(running, nodes))
        for failure in failures:
            self.overcommits[f"admission {failure}"] = failure

    def capacity_freed(self) -> None:
        self.freed = True

    def phase_done(self, name: str, ok: bool, seconds: float, *, until: str = "") -> None:
        self.phases.append(PhaseResult(name, ok, round(seconds, 1), until))


def overcommits(running: Sequence[RunningPod], nodes: Mapping[str, SimNode]) -> dict[str, str]:
    """GPU ("node/index") -> what is wrong with what runs on it, for every GPU that does not fit."""
    on_gpu: dict[tuple[str, int], list[RunningPod]] = {}
    for pod in running:
        for gpu in pod.gpus:
            on_gpu.setdefault((pod.node, gpu), []).append(pod)
    wrong: dict[str, str] = {}
    for (node_name, gpu), pods in sorted(on_gpu.items()):
        node = nodes[node_name]
        total = node.group.gpu_memory_bytes
        outside = node.outside_bytes(gpu)
        committed = sum(p.memory_bytes for p in pods) + outside
        who = ", ".join(p.name for p in pods)
        key = f"{node_name}/{gpu}"
        if not node.healthy(gpu):
            wrong[key] = f"{who} on a lost GPU"
        elif committed > total:
            wrong[key] = (
                f"{who} ({format_bytes(committed - outside)}) + "
                f"{format_bytes(outside)} outside > {format_bytes(total)}"
            )
        elif len(pods) > 1 and any(not p.shared for p in pods):
            wrong[key] = f"exclusive GPU holds {who}"
    return wrong


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class Summary:
    scenario: str
    passed: bool
    wall_seconds: float
    pods_placed: int
    placed_by_app: dict[str, int]
    pods_refused: int
    still_pending: list[str]
    refused_reasons: list[dict[str, Any]]
    peak_replicas: int
    max_replicas: int
    cap_reached: bool
    cap: int | None
    cap_message: str
    cap_lifted: bool
    lifted_to: int | None
    overcommits: int
    overcommit_details: list[str]
    dra_claims: list[dict[str, Any]]
    phases: list[dict[str, Any]]
    checks: list[dict[str, Any]]
    scaler_events: list[str]
    processes: list[dict[str, Any]]
    workdir: str

    def to_json(self) -> dict[str, Any]:
        return {_camel(k): v for k, v in asdict(self).items()}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def build_summary(
    record: Record,
    *,
    scenario: str,
    expect_cap: bool,
    expect_lift: bool,
    events: Sequence[Mapping[str, Any]],
    pending: Sequence[str],
    wall_seconds: float,
    processes: Sequence[Mapping[str, Any]],
    workdir: Path,
    interrupted: bool = False,
) -> Summary:
    """Pure: the record and the namespace's events in, the summary and its verdict out."""
    refused = [e for e in events if e.get("reason") == "FailedScheduling"]
    reasons: Counter[str] = Counter()
    for e in refused:
        reasons[str(e.get("message", ""))] += int(e.get("count") or 1)
    scaler_events = [
        f"{e.get('reason')}: {e.get('message')}"
        for e in events
        if (e.get("involvedObject") or {}).get("kind") == "AIScaler"
    ]
    lifted = record.lifted_to is not None
    checks = [
        Check(
            "every phase reached what it waited for",
            all(p.ok for p in record.phases) and not interrupted,
            ", ".join(f"{p.name} {'ok' if p.ok else 'TIMED OUT'}" for p in record.phases)
            or "no phase ran",
        ),
        Check(
            "every placement fits (overcommits 0)",
            not record.overcommits,
            "; ".join(f"{k}: {v}" for k, v in record.overcommits.items()) or "0",
        ),
        Check(
            "replicas stayed within maxReplicas",
            record.peak_applied <= record.max_replicas,
            f"peak {record.peak_applied} of {record.max_replicas}",
        ),
    ]
    if expect_cap:
        checks.append(
            Check(
                "the GPU cap was reached",
                record.cap_reached and record.cap is not None,
                record.cap_message or f"ScalingLimited {INSUFFICIENT} never seen",
            )
        )
    if expect_lift:
        checks.append(
            Check(
                "the cap lifted once capacity freed",
                lifted,
                f"{record.cap} -> {record.lifted_to} Ready"
                if lifted
                else f"Ready replicas never rose above the cap ({record.cap})",
            )
        )
    by_app = Counter(record.placed.values())
    return Summary(
        scenario=scenario,
        passed=all(c.ok for c in checks),
        wall_seconds=round(wall_seconds, 1),
        pods_placed=len(record.placed),
        placed_by_app=dict(sorted(by_app.items())),
        pods_refused=len({(e.get("involvedObject") or {}).get("name") for e in refused}),
        still_pending=list(pending),
        refused_reasons=[{"message": m, "count": n} for m, n in reasons.most_common()],
        peak_replicas=record.peak_applied,
        max_replicas=record.max_replicas,
        cap_reached=record.cap_reached,
        cap=record.cap,
        cap_message=record.cap_message,
        cap_lifted=lifted,
        lifted_to=record.lifted_to,
        overcommits=len(record.overcommits),
        overcommit_details=[f"{k}: {v}" for k, v in record.overcommits.items()],
        dra_claims=[
            asdict(h)
            for h in sorted(record.held.values(), key=lambda h: (h.node, h.gpu or 0, h.pod))
        ],
        phases=[asdict(p) for p in record.phases],
        checks=[asdict(c) for c in checks],
        scaler_events=scaler_events,
        processes=[dict(p) for p in processes],
        workdir=str(workdir),
    )


def render(summary: Summary) -> str:
    verdict = "PASSED" if summary.passed else "FAILED"
    minutes, seconds = divmod(int(summary.wall_seconds), 60)
    apps = ", ".join(f"{app or 'other'} {n}" for app, n in summary.placed_by_app.items())
    pending = (
        f"; still pending: {', '.join(summary.still_pending)}" if summary.still_pending else ""
    )
    lines = [
        f"Headroom demo, scenario {summary.scenario}: {verdict} in {minutes}m{seconds:02d}s",
        f"  pods placed      {summary.pods_placed} ({apps})",
        f"  pods refused     {summary.pods_refused} at least once by the scheduler{pending}",
    ]
    for reason in summary.refused_reasons[:4]:
        lines += textwrap.wrap(
            " ".join(str(reason["message"]).split()),
            width=100,
            initial_indent=f"     {reason['count']:>3}x ",
            subsequent_indent=" " * 10,
        )
    cap = f"GPU cap {summary.cap} reached" if summary.cap_reached else "GPU cap not reached"
    lift = (
        f", lifted to {summary.lifted_to} Ready after capacity freed" if summary.cap_lifted else ""
    )
    lines += [
        f"  replicas         peak {summary.peak_replicas} of maxReplicas "
        f"{summary.max_replicas}; {cap}{lift}"
    ]
    if summary.cap_message:
        lines.append(f"     at the cap: {_short(summary.cap_message, 110)}")
    if summary.scaler_events:
        lines.append("  scaler events    (oldest first)")
        lines += [f"     {_short(e, 110)}" for e in summary.scaler_events[-8:]]
    if summary.dra_claims:
        pods = len({h["pod"] for h in summary.dra_claims})
        lines.append(
            f"  DRA claims       {pods} pod(s) held GPUs through ResourceClaims (allocated by "
            "kube-scheduler, checked by live memory)"
        )
        lines += [
            f"     {h['pod']:<18} {h['node']}/{_n(h['gpu'])} {h['uuid']} (claim {h['claim']})"
            for h in summary.dra_claims[:8]
        ]
        if len(summary.dra_claims) > 8:
            lines.append(f"     ... and {len(summary.dra_claims) - 8} more")
    lines.append(f"  overcommits      {summary.overcommits}")
    lines += [f"     {d}" for d in summary.overcommit_details[:5]]
    lines.append(
        "  phases           "
        + ", ".join(
            f"{p['name']} {p['seconds']:.0f}s{'' if p['ok'] else ' TIMED OUT'}"
            for p in summary.phases
        )
    )
    lines.append("  checks")
    lines += [
        f"     [{'ok' if c['ok'] else 'FAIL'}] {c['name']}: {_short(c['detail'], 90)}"
        for c in summary.checks
    ]
    return "\n".join(lines)


def _n(value: object) -> str:
    return "?" if value is None else str(value)


def _short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def write_json(summary: Summary, path: Path) -> None:
    path.write_text(json.dumps(summary.to_json(), indent=2) + "\n")
