"""The extender's settings as one frozen object: `headroom extender` builds it from its flags and
the serving edge hands it to `create_app(config)` in the gunicorn worker.

Each field is named as its flag's argparse destination (`--staleness-seconds` ->
`staleness_seconds`), so `from_args` needs no list of its own: a new setting is a flag and a field.
Only the standard library and the contract load here, so the command can build it without
importing the app (Flask, prometheus_client), which must load first in the worker.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import urllib.parse
from dataclasses import dataclass

from headroom import names
from headroom.dra import NVIDIA_GPU_DRIVER, parse_names
from headroom.fields import FieldError
from headroom.fit import Policy
from serving.address import split_host_port

MAX_WINDOW_SECONDS = 3600  # HPA's own upper bound for a stabilisation window


@dataclass(frozen=True)
class ExtenderConfig:
    kubeconfig: str | None = None  # None: $KUBECONFIG, ~/.kube/config, else in-cluster
    policy: str = Policy.BINPACK.value
    staleness_seconds: float = names.DEFAULT_STALENESS_SECONDS
    leader_lease: str = ""  # NAMESPACE/NAME of the scheduler's Lease; "" always acts
    identity: str = ""  # as the scheduler writes it in the Lease; "" is the hostname
    prometheus_url: str = ""
    scale_down_stabilization_seconds: int | None = None  # None: HPA's 300 s
    gpu_device_classes: str = NVIDIA_GPU_DRIVER  # comma-separated: whose claim requests count
    gpu_drivers: str = NVIDIA_GPU_DRIVER  # comma-separated: whose allocated devices are GPUs
    metrics_bind: str = ""  # HOST:PORT of a /metrics-only listener; "" none (verbs' /metrics)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ExtenderConfig:
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})

    def problem(self) -> str | None:
        """The first setting that cannot work, as a message naming its flag; None when all do."""
        if self.policy not in {p.value for p in Policy}:
            return f"--policy: expected one of binpack, spread (got {self.policy!r})"
        if not self.staleness_seconds > 0:
            return f"--staleness-seconds: expected seconds above 0 (got {self.staleness_seconds})"
        lease = self.leader_lease
        if lease and (lease.count("/") != 1 or not all(lease.split("/"))):
            return f"--leader-lease: expected NAMESPACE/NAME (got {lease!r})"
        url = urllib.parse.urlsplit(self.prometheus_url)
        if self.prometheus_url and (url.scheme not in ("http", "https") or not url.netloc):
            return (
                "--prometheus-url: expected an http(s) URL such as http://prometheus:9090 "
                f"(got {self.prometheus_url!r})"
            )
        window = self.scale_down_stabilization_seconds
        if window is not None and not 0 <= window <= MAX_WINDOW_SECONDS:
            return f"--scale-down-stabilization-seconds: expected 0..3600 (got {window})"
        return self._metrics_problem() or self._dra_problem()

    def _metrics_problem(self) -> str | None:
        if self.metrics_bind and self.metrics_address is None:
            return (
                "--metrics-bind: expected HOST:PORT such as 0.0.0.0:9411 "
                f"(got {self.metrics_bind!r})"
            )
        return None

    def _dra_problem(self) -> str | None:
        for flag, value in (
            ("--gpu-device-classes", self.gpu_device_classes),
            ("--gpu-drivers", self.gpu_drivers),
        ):
            try:
                parse_names(value, flag)
            except FieldError as exc:
                return str(exc)
        return None

    @property
    def device_classes(self) -> tuple[str, ...]:
        return parse_names(self.gpu_device_classes, "--gpu-device-classes")

    @property
    def drivers(self) -> tuple[str, ...]:
        return parse_names(self.gpu_drivers, "--gpu-drivers")

    @property
    def metrics_address(self) -> tuple[str, int] | None:
        """(host, port) of --metrics-bind; None when unset or not HOST:PORT."""
        parsed = split_host_port(self.metrics_bind) if self.metrics_bind else None
        return parsed if parsed is not None and parsed[0] else None

    @property
    def lease(self) -> tuple[str, str] | None:
        namespace, _, name = self.leader_lease.partition("/")
        return (namespace, name) if name else None

    @property
    def identity_or_hostname(self) -> str:
        return self.identity or os.uname().nodename
