"""What the extender keeps of each pod in its watch cache: enough for the view, the requeuer, the
gpu-ready gate and the AIScalers, and no more (a large cluster has many pods)."""

from __future__ import annotations

from typing import Any

from headroom import names
from kubeapi.client import JsonDict


def slim_pod(pod: JsonDict) -> JsonDict:
    """What the view needs of a pod; the rest is not kept (a large cluster has many pods)."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}

    def resources(containers: Any) -> list[JsonDict]:
        # restartPolicy marks a native sidecar, which counts toward the pod's GPUs.
        return [
            {k: c[k] for k in ("resources", "restartPolicy") if k in c}
            for c in containers or []
            if isinstance(c, dict)
        ]

    affinity = (spec.get("affinity") or {}).get("nodeAffinity") or {}
    required = affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    return {
        # Labels: the AIScaler finds its target's pods here by their selector.
        "metadata": {
            k: meta[k]
            for k in (
                "name",
                "namespace",
                "uid",
                "resourceVersion",
                "labels",
                "annotations",
                "creationTimestamp",
                "deletionTimestamp",
            )
            if k in meta
        },
        "spec": {
            "nodeName": spec.get("nodeName"),
            "schedulerName": spec.get("schedulerName"),
            "containers": resources(spec.get("containers")),
            "initContainers": resources(spec.get("initContainers")),
            "readinessGates": spec.get("readinessGates") or [],
            # Where a parked pod may go, and its place in the queue (the requeuer).
            "nodeSelector": spec.get("nodeSelector") or {},
            "affinity": {
                "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": required}
            }
            if required
            else {},
            "priority": spec.get("priority") or 0,
            # DRA: the pod's claims, and below the names of those made from templates.
            **({"resourceClaims": spec["resourceClaims"]} if spec.get("resourceClaims") else {}),
        },
        "status": {
            "phase": status.get("phase"),
            "podIP": status.get("podIP"),
            **(
                {"resourceClaimStatuses": status["resourceClaimStatuses"]}
                if status.get("resourceClaimStatuses")
                else {}
            ),
            "conditions": [
                c
                for c in status.get("conditions") or []
                if isinstance(c, dict) and c.get("type") in KEPT_CONDITIONS
            ],
        },
    }


# Ready and podIP: the AIScaler scrapes the Ready pods and counts them.
KEPT_CONDITIONS = (names.GPU_READY_CONDITION, "PodScheduled", "Ready")
