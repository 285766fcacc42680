"""The webhook's settings as one frozen object: `headroom webhook` builds it from its flags and
the serving edge hands it to `create_app(config)` in each gunicorn worker.

Only the standard library and the contract load here, so the command can build it without
importing the app.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from headroom.dra import DEFAULT_GPU_DRIVERS, parse_names
from headroom.fields import FieldError

KUBECONFIG_FLAG, IN_CLUSTER_FLAG = "--kubeconfig", "--in-cluster"
DEVICE_CLASSES_FLAG = "--gpu-device-classes"


@dataclass(frozen=True)
class WebhookConfig:
    profiles: Path  # the profiles YAML, mounted from a ConfigMap; reloaded when it changes
    # How often the file is checked for changes; 0 runs no watcher (the caller checks itself).
    profile_poll_seconds: float = 5.0
    # API access, to read the ResourceClaims (and templates) of DRA pods: a kubeconfig file, or
    # the pod's own ServiceAccount. Neither: no access, and managed pods with claims are denied.
    kubeconfig: str | None = None
    in_cluster: bool = False
    # The DeviceClasses whose requests are GPU requests.
    gpu_device_classes: tuple[str, ...] = DEFAULT_GPU_DRIVERS

    @property
    def api_access(self) -> bool:
        return self.in_cluster or bool(self.kubeconfig)

    def problem(self) -> str | None:
        """The first setting that cannot work, as a message naming its flag; None when all do."""
        if self.in_cluster and self.kubeconfig:
            return f"{KUBECONFIG_FLAG} and {IN_CLUSTER_FLAG}: expected one of the two, not both"
        return device_classes_problem(self.gpu_device_classes)


def parse_device_classes(text: str) -> tuple[str, ...]:
    """`--gpu-device-classes`' value: names separated by commas (spaces around them ignored)."""
    return tuple(part.strip() for part in text.split(","))


def device_classes_problem(classes: tuple[str, ...]) -> str | None:
    try:
        parse_names(",".join(classes), DEVICE_CLASSES_FLAG)
    except FieldError as exc:
        return str(exc)
    return None
