"""The pod statuses the demo's kubelet writes: Running (with the Ready condition as the readiness
gates say) and Succeeded."""

from __future__ import annotations

import time
from typing import Any

from headroom.clock import format_time


def running_status(
    pod: dict[str, Any], *, uid: str, ip: str, ready: bool, gates: list[str]
) -> dict[str, Any]:
    now = format_time(time.time())
    started = (pod.get("status") or {}).get("startTime") or now
    waiting = [g for g in gates if g]
    return {
        "phase": "Running",
        "hostIP": "127.0.0.1",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": started,
        "conditions": [
            {"type": "Initialized", "status": "True", "lastTransitionTime": started},
            {"type": "ContainersReady", "status": "True", "lastTransitionTime": started},
            {
                "type": "Ready",
                "status": "True" if ready else "False",
                "lastTransitionTime": now,
                **(
                    {}
                    if ready
                    else {
                        "reason": "ReadinessGatesNotReady",
                        "message": f"the status of pod readiness gate "
                        f'{", ".join(waiting)} is not "True"',
                    }
                ),
            },
        ],
        "containerStatuses": [
            {
                "name": c["name"],
                "image": c.get("image", ""),
                "imageID": "",
                "ready": True,
                "started": True,
                "restartCount": 0,
                "containerID": f"containerd://{uid.replace('-', '')}{i}",
                "state": {"running": {"startedAt": started}},
            }
            for i, c in enumerate(pod["spec"].get("containers") or [])
        ],
    }


def completed_status(pod: dict[str, Any]) -> dict[str, Any]:
    now = format_time(time.time())
    return {
        "phase": "Succeeded",
        "conditions": [
            {
                "type": "Ready",
                "status": "False",
                "reason": "PodCompleted",
                "lastTransitionTime": now,
            },
            {
                "type": "ContainersReady",
                "status": "False",
                "reason": "PodCompleted",
                "lastTransitionTime": now,
            },
        ],
        "containerStatuses": [
            {
                "name": c["name"],
                "image": c.get("image", ""),
                "imageID": "",
                "ready": False,
                "started": False,
                "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": now}},
            }
            for c in pod["spec"].get("containers") or []
        ],
    }
