"""The `headroom.dev/gpu-ready` readiness gate: True once a pod's GPUs are healthy in a fresh report
and the pod is seen resident on them.

`gate_condition` is the pure judgement; `GateController` runs it (while this extender leads) for
every bound pod that carries the gate, and patches the pod's status only when the condition
changes. Pods without the gate are ignored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from extender import api
from extender.leader import run_while_leading
from headroom import names
from headroom.clock import format_time
from headroom.demand import assigned_gpus
from headroom.report import NodeReport, stale_reason
from headroom.worker import Worker
from kubeapi.client import ApiError, KubeApi

log = logging.getLogger(__name__)
JsonDict = dict[str, Any]


@dataclass(frozen=True)
class GateCondition:
    status: str  # "True" or "False"
    reason: str  # GPUReady, GPUUnhealthy, ReportStale, NotResident
    message: str


def has_gate(pod: JsonDict) -> bool:
    gates = (pod.get("spec") or {}).get("readinessGates") or []
    return any(
        isinstance(g, dict) and g.get("conditionType") == names.GPU_READY_CONDITION for g in gates
    )


def gate_condition(
    pod: JsonDict,
    report: NodeReport | None,
    *,
    now_unix_seconds: float,
    staleness_seconds: float,
    claimed: Iterable[str] = (),
) -> GateCondition:
    """The gate's condition for a bound pod, given its node's latest report. `claimed`: the GPUs
    its DRA claims hold, which, like the GPUs assigned at bind, are its GPUs before any process
    of it runs there."""
    if report is None:
        return GateCondition("False", "ReportStale", "no GPU report for the pod's node")
    stale = stale_reason(
        report, now_unix_seconds=now_unix_seconds, staleness_seconds=staleness_seconds
    )
    if stale is not None:
        return GateCondition("False", "ReportStale", stale)
    if not report.healthy:
        return GateCondition("False", "GPUUnhealthy", f"GPUs unreadable: {report.reason}")
    uid = str((pod.get("metadata") or {}).get("uid", ""))
    assigned = set(assigned_gpus(pod)) | set(claimed)
    seen_on = [g for g in report.gpus if any(p.uid == uid for p in g.pods)]
    mine = [g for g in report.gpus if g.uuid in assigned] or seen_on
    sick = [g for g in mine if not g.healthy]
    if sick:
        gpu = sick[0]
        return GateCondition(
            "False",
            "GPUUnhealthy",
            f"GPU {gpu.index} ({gpu.uuid}) unhealthy: {gpu.reason or 'unknown'}",
        )
    if not seen_on:
        return GateCondition(
            "False", "NotResident", "the pod's processes are not seen on the node's GPUs yet"
        )
    where = ", ".join(f"GPU {g.index}" for g in seen_on)
    return GateCondition("True", "GPUReady", f"healthy GPUs, pod resident on {where}")


def current_condition(pod: JsonDict) -> tuple[str, str] | None:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if isinstance(condition, dict) and condition.get("type") == names.GPU_READY_CONDITION:
            return str(condition.get("status")), str(condition.get("reason"))
    return None


class GateController:
    def __init__(
        self,
        kube: KubeApi,
        *,
        pods: Callable[[], Iterable[JsonDict]],
        report: Callable[[str], NodeReport | None],
        is_leader: Callable[[], bool],
        staleness_seconds: float,
        interval_seconds: float = 2.0,
        clock: Callable[[], float] = time.time,
        claimed: Callable[[JsonDict], Iterable[str]] = lambda pod: (),
    ) -> None:
        self.claimed = claimed  # the GPUs a pod's DRA claims hold
        self.kube = kube
        self.pods = pods
        self.report = report
        self.is_leader = is_leader
        self.staleness_seconds = staleness_seconds
        self.interval_seconds = interval_seconds
        self.clock = clock
        self.updates = 0
        self.worker = Worker(self._run, name="gpu-ready-gate")

    def start(self) -> None:
        self.worker.start()

    def stop(self) -> None:
        self.worker.stop()

    def _run(self) -> None:
        run_while_leading(
            self.reconcile,
            stop=self.worker.stopped,
            interval_seconds=self.interval_seconds,
            is_leader=self.is_leader,
            what="gpu-ready gate: reconcile",
        )

    def reconcile(self) -> int:
        """Bring every gated, bound pod's condition up to date; returns how many changed."""
        changed = 0
        for pod in list(self.pods()):
            node = (pod.get("spec") or {}).get("nodeName")
            if not node or not has_gate(pod):
                continue
            wanted = gate_condition(
                pod,
                self.report(str(node)),
                now_unix_seconds=self.clock(),
                staleness_seconds=self.staleness_seconds,
                claimed=self.claimed(pod),
            )
            if current_condition(pod) != (wanted.status, wanted.reason):
                changed += self._patch(pod, wanted)
        self.updates += changed
        return changed

    def _patch(self, pod: JsonDict, wanted: GateCondition) -> int:
        meta = pod.get("metadata") or {}
        condition = {
            "type": names.GPU_READY_CONDITION,
            "status": wanted.status,
            "reason": wanted.reason,
            "message": wanted.message,
            "lastTransitionTime": format_time(self.clock()),
        }
        # A strategic merge patch merges status.conditions by type: the others stay as they are.
        body = {"metadata": {"uid": meta.get("uid")}, "status": {"conditions": [condition]}}
        try:
            api.patch_pod_status(
                self.kube,
                namespace=str(meta.get("namespace")),
                name=str(meta.get("name")),
                patch=body,
            )
        except ApiError as exc:
            log.info(
                "gpu-ready gate: cannot update %s/%s: %s",
                meta.get("namespace"),
                meta.get("name"),
                exc,
            )
            return 0
        return 1
