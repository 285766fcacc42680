"""The pod status a kubelet writes, built from what the podrunner sees of its processes.

Pure: `pod_status` takes each container's `ContainerView` and the pod as the API has it (whose
condition times are kept while a condition does not change) and returns the `status` to write:
phase, hostIP/podIP, the conditions (PodReadyToStartContainers, Initialized, ContainersReady,
Ready with the pod's readiness gates) and the container statuses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

JsonDict = dict[str, Any]


@dataclass
class ContainerView:
    """One container as the podrunner last saw it. `state` is "waiting", "running" or
    "terminated"; times are RFC 3339."""

    name: str
    image: str
    state: str = "waiting"
    reason: str = "ContainerCreating"
    message: str = ""
    started_at: str = ""
    finished_at: str = ""
    exit_code: int = 0
    ready: bool = False
    started: bool = False
    restart_count: int = 0
    container_id: str = ""
    last_terminated: JsonDict = field(default_factory=dict)

    def status(self) -> JsonDict:
        state: JsonDict
        if self.state == "running":
            state = {"running": {"startedAt": self.started_at}}
        elif self.state == "terminated":
            state = {"terminated": self._terminated()}
        else:
            state = {"waiting": {"reason": self.reason, **_message(self.message)}}
        out: JsonDict = {
            "name": self.name,
            "image": self.image,
            "imageID": "",
            "ready": self.ready,
            "started": self.started,
            "restartCount": self.restart_count,
            "state": state,
            "lastState": {"terminated": self.last_terminated} if self.last_terminated else {},
        }
        if self.container_id:
            out["containerID"] = self.container_id
        return out

    def _terminated(self) -> JsonDict:
        return {
            "exitCode": self.exit_code,
            "reason": self.reason,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            **_message(self.message),
            **({"containerID": self.container_id} if self.container_id else {}),
        }

    def terminate(self, *, exit_code: int, finished_at: str, message: str) -> None:
        """The process exited: terminated now, and remembered as the last state once it
        restarts."""
        self.state, self.exit_code, self.finished_at = "terminated", exit_code, finished_at
        self.reason = "Completed" if exit_code == 0 else "Error"
        self.message, self.ready = message, False
        self.last_terminated = self._terminated()


def _message(message: str) -> JsonDict:
    return {"message": message} if message else {}


def pod_status(
    pod: JsonDict,
    *,
    host_ip: str,
    sandbox_ready: bool,
    init: list[ContainerView],
    containers: list[ContainerView],
    now: str,
) -> JsonDict:
    """The status to write for `pod`. `init`: its init containers, in order; a native sidecar
    (restartPolicy Always) counts as done once started, any other once it exited 0."""
    specs = {c["name"]: c for c in pod["spec"].get("initContainers") or []}
    sidecars = [v for v in init if specs.get(v.name, {}).get("restartPolicy") == "Always"]
    initialized = all(
        v.started if v in sidecars else (v.state == "terminated" and v.exit_code == 0) for v in init
    )
    containers_ready = initialized and all(v.ready for v in [*sidecars, *containers])
    gates = [g["conditionType"] for g in pod["spec"].get("readinessGates") or []]
    previous = {c["type"]: c for c in (pod.get("status") or {}).get("conditions") or []}
    gates_true = all(previous.get(g, {}).get("status") == "True" for g in gates)
    ours = {
        "PodReadyToStartContainers": sandbox_ready,
        "Initialized": initialized,
        "ContainersReady": containers_ready,
        "Ready": containers_ready and gates_true,
    }
    conditions = [
        _condition(kind, value, previous=previous.get(kind), now=now)
        for kind, value in ours.items()
    ]
    # Running once every container has run (an exit awaiting its restart does not undo that).
    running = initialized and all(v.container_id for v in containers)
    status: JsonDict = {
        "phase": "Running" if running else "Pending",
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "startTime": (pod.get("status") or {}).get("startTime") or now,
        "conditions": conditions,
        "containerStatuses": [v.status() for v in containers],
    }
    if init:
        status["initContainerStatuses"] = [v.status() for v in init]
    if sandbox_ready:
        status["podIP"], status["podIPs"] = host_ip, [{"ip": host_ip}]
    return status


def _condition(kind: str, value: bool, *, previous: JsonDict | None, now: str) -> JsonDict:
    text = "True" if value else "False"
    unchanged = previous is not None and previous.get("status") == text
    since = previous.get("lastTransitionTime", now) if unchanged and previous else now
    return {"type": kind, "status": text, "lastProbeTime": None, "lastTransitionTime": since}
