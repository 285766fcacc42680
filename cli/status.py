"""`headroom status`: where the GPU headroom is, and what the AIScalers decided, at a glance.

Reads GPUNodes, the pods bound to nodes and AIScalers with the kubeconfig kubectl would use, and
accounts each GPU with the same `headroom.ledger` as the extender: used (the agent's report),
reserved (pods bound to the node that the report does not show yet, and GPUs DRA allocated to
claims of pods not bound yet) and free. A GPU a device taint keeps new claims off shows unhealthy.
Errors say what is wrong: no cluster, no Headroom CRDs, no permission; a cluster that does not
serve DRA (or does not let the user read it) simply has no DRA GPUs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from cli import api
from cli.cluster import CliError, Cluster, server_of
from headroom.dra import DEFAULT_GPU_DRIVERS as DEFAULT_GPU_CLASSES  # NVIDIA's class is its driver
from headroom.quantity import format_bytes

if TYPE_CHECKING:
    from headroom.fit import PodClaim
    from kubeapi.client import KubeApi


@dataclass(frozen=True)
class GpuRow:
    node: str
    gpu: int
    model: str
    total_bytes: int
    used_bytes: int
    reserved_bytes: int
    free_bytes: int
    healthy: bool
    report_age_seconds: float


@dataclass(frozen=True)
class ScalerRow:
    namespace: str
    name: str
    desired: int | None
    feasible: int | None
    applied: int | None
    limited: str


TIMEOUT_SECONDS = 10.0
StatusError = CliError  # what `gather` raises: a problem a person can fix, the message says which


def gather(
    kube: KubeApi | Cluster,
    *,
    now_unix_seconds: float,
    gpu_device_classes: Sequence[str] = DEFAULT_GPU_CLASSES,
) -> tuple[list[GpuRow], list[ScalerRow]]:
    from headroom.fit import NodeSnapshot  # noqa: PLC0415
    from headroom.ledger import gpu_accounts  # noqa: PLC0415
    from headroom.report import ReportError, report_from_status, with_taints  # noqa: PLC0415

    cluster = kube if isinstance(kube, Cluster) else Cluster(kube)
    gpunodes = cluster.list(api.GPUNODES)
    claims, tainted = _claims_and_taints(cluster, cluster.list(api.PODS), gpu_device_classes)
    rows: list[GpuRow] = []
    for obj in sorted(gpunodes, key=lambda o: o["metadata"]["name"]):
        name = obj["metadata"]["name"]
        try:
            report = with_taints(report_from_status(name, obj.get("status") or {}), tainted)
        except ReportError:
            continue
        for account in gpu_accounts(NodeSnapshot(name, report, tuple(claims.get(name, ())))):
            gpu = account.gpu
            rows.append(
                GpuRow(
                    name,
                    gpu.index,
                    gpu.model,
                    gpu.total_bytes,
                    account.used_bytes,
                    account.reserved_bytes,
                    account.free_bytes,
                    gpu.healthy,
                    report.age_seconds(now_unix_seconds),
                )
            )
    return rows, [_scaler_row(o) for o in cluster.list(api.AISCALERS)]


def _claims_and_taints(
    cluster: Cluster, pods: list[dict[str, Any]], device_classes: Sequence[str]
) -> tuple[dict[str, list[PodClaim]], dict[str, str]]:
    """Per node, the claims of bound pods and of DRA allocations for pods not bound yet, as the
    extender counts them; and the GPUs (by UUID) a device taint keeps new claims off."""
    from headroom import dra  # noqa: PLC0415
    from headroom.ledger import (  # noqa: PLC0415
        allocation_claims,
        bound_node,
        claims_by_node,
        pod_uid,
        with_allocations,
    )
    from headroom.podclaims import DraLookups  # noqa: PLC0415

    # DRA is optional: a cluster that does not serve it (or does not let the user read it) has
    # no DRA GPUs, and `status` shows what the device plugin's pods hold.
    resource_claims = cluster.list(api.RESOURCE_CLAIMS, optional=True)
    by_name = {
        (str(c["metadata"].get("namespace", "")), str(c["metadata"]["name"])): c
        for c in resource_claims
    }
    devices = dra.device_index(cluster.list(api.RESOURCE_SLICES, optional=True))
    lookups = DraLookups(
        claim=lambda namespace, name: by_name.get((namespace, name)),
        devices=devices,
        device_classes=tuple(device_classes),
    )
    bound = {pod_uid(p) for p in pods if bound_node(p)}
    claims = with_allocations(
        claims_by_node(pods, dra=lookups),
        allocation_claims(resource_claims, bound_pods=bound.__contains__, dra=lookups),
    )
    rules = cluster.list(api.DEVICE_TAINT_RULES, optional=True)
    tainted = dra.tainted_gpus(devices.values(), rules)
    return claims, tainted


def _scaler_row(obj: dict[str, Any]) -> ScalerRow:
    status = obj.get("status") or {}
    limited = next(
        (
            c.get("reason", "")
            for c in status.get("conditions") or []
            if c.get("type") == "ScalingLimited" and c.get("status") == "True"
        ),
        "",
    )
    return ScalerRow(
        obj["metadata"].get("namespace", ""),
        obj["metadata"]["name"],
        status.get("desiredReplicas"),
        status.get("feasibleReplicas"),
        status.get("appliedReplicas"),
        limited,
    )


def render(gpus: Sequence[GpuRow], scalers: Sequence[ScalerRow]) -> str:
    def table(header: list[str], rows: list[list[str]]) -> list[str]:
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        return [
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
            for r in [header, *rows]
        ]

    lines = table(
        ["NODE", "GPU", "MODEL", "TOTAL", "USED", "RESERVED", "FREE", "HEALTHY", "REPORT-AGE"],
        [
            [
                g.node,
                str(g.gpu),
                g.model,
                format_bytes(g.total_bytes),
                format_bytes(g.used_bytes),
                format_bytes(g.reserved_bytes),
                format_bytes(g.free_bytes),
                "yes" if g.healthy else "NO",
                f"{g.report_age_seconds:.0f}s",
            ]
            for g in gpus
        ],
    )
    if not gpus:
        lines = ["no GPU reports (is the node agent running?)"]
    lines.append("")
    if scalers:
        lines += table(
            ["NAMESPACE", "AISCALER", "DESIRED", "FEASIBLE", "APPLIED", "LIMITED"],
            [
                [
                    s.namespace,
                    s.name,
                    _n(s.desired),
                    _n(s.feasible),
                    _n(s.applied),
                    s.limited or "-",
                ]
                for s in scalers
            ],
        )
    else:
        lines.append("no AIScalers")
    return "\n".join(lines)


def _n(value: int | None) -> str:
    return "-" if value is None else str(value)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "status",
        help="Show GPU headroom per node and the AIScalers' replica decisions.",
        description="Show, per node and GPU, total, used, reserved and free memory, health and "
        "report age; then each AIScaler's desired, feasible and applied replicas. "
        "Uses the kubeconfig kubectl would.",
    )
    parser.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig (default as kubectl)")
    parser.add_argument(
        "--output",
        "-o",
        choices=["table", "json"],
        default="table",
        help="table (default) or json for scripts",
    )
    parser.add_argument(
        "--gpu-device-classes",
        metavar="NAMES",
        default=",".join(DEFAULT_GPU_CLASSES),
        help="comma-separated DRA DeviceClasses whose claims ask for GPUs "
        f"(default {','.join(DEFAULT_GPU_CLASSES)})",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from kubernetes.config.config_exception import ConfigException  # noqa: PLC0415

    from headroom.dra import parse_names  # noqa: PLC0415
    from headroom.fields import FieldError  # noqa: PLC0415
    from kubeapi.client import CONNECT_TIMEOUT_SECONDS, Kube, load_api_client  # noqa: PLC0415

    try:
        classes = list(parse_names(args.gpu_device_classes, "--gpu-device-classes"))
    except FieldError as exc:
        print(f"headroom status: error: {exc}", file=sys.stderr)
        return 2
    try:
        api_client = load_api_client(args.kubeconfig)
        cluster = Cluster(
            Kube(api_client, timeout_seconds=TIMEOUT_SECONDS),
            server_url=server_of(api_client),
            connect_timeout_seconds=CONNECT_TIMEOUT_SECONDS,
            timeout_seconds=TIMEOUT_SECONDS,
        )
        gpus, scalers = gather(cluster, now_unix_seconds=time.time(), gpu_device_classes=classes)
    except (StatusError, ConfigException) as exc:
        print(f"headroom status: error: {exc}", file=sys.stderr)
        return 1
    print(show(gpus, scalers, output=args.output))
    return 0


def show(gpus: Sequence[GpuRow], scalers: Sequence[ScalerRow], *, output: str) -> str:
    """The table, or with `output` "json" the same for scripts."""
    if output == "json":
        return json.dumps(
            {"gpus": [asdict(g) for g in gpus], "aiscalers": [asdict(s) for s in scalers]},
            indent=2,
        )
    return render(gpus, scalers)
