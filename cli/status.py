"""`headroom status`: where the GPU headroom is, and what the AIScalers decided, at a glance.

Reads GPUNodes, the pods bound to nodes and AIScalers with the kubeconfig kubectl would use, and
accounts each GPU with the same `headroom.ledger` as the extender: used (the agent's report),
reserved (pods bound to the node that the report does not show yet) and free. Errors say what is
wrong: no cluster, no Headroom CRDs, no permission.
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
from headroom.quantity import format_bytes

if TYPE_CHECKING:
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


class StatusError(Exception):
    """A problem a person can fix; the message says which."""


def gather(kube: KubeApi, *, now_unix_seconds: float) -> tuple[list[GpuRow], list[ScalerRow]]:
    from headroom.fit import NodeSnapshot  # noqa: PLC0415
    from headroom.ledger import claims_by_node, gpu_accounts  # noqa: PLC0415
    from headroom.report import ReportError, report_from_status  # noqa: PLC0415

    gpunodes = _list(kube, api.GPUNODES)
    claims = claims_by_node(_list(kube, api.PODS))
    rows: list[GpuRow] = []
    for obj in sorted(gpunodes, key=lambda o: o["metadata"]["name"]):
        name = obj["metadata"]["name"]
        try:
            report = report_from_status(name, obj.get("status") or {})
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
    return rows, [_scaler_row(o) for o in _list(kube, api.AISCALERS)]


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


def _list(kube: KubeApi, path: str) -> list[dict[str, Any]]:
    from kubeapi.client import ApiError, NotFound, Unreachable  # noqa: PLC0415

    try:
        return api.list_items(kube, path)
    except Unreachable as exc:
        raise StatusError(f"cannot reach the cluster: {exc}") from exc
    except NotFound as exc:
        raise StatusError(
            "Headroom's CRDs are not installed in this cluster (kubectl apply -f manifests/crds/)"
        ) from exc
    except ApiError as exc:
        if exc.status in (401, 403):
            raise StatusError(f"no permission to read {path}: {exc}") from exc
        raise StatusError(str(exc)) from exc


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
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from kubernetes.config.config_exception import ConfigException  # noqa: PLC0415

    from kubeapi.client import Kube, load_api_client  # noqa: PLC0415

    try:
        kube = Kube(load_api_client(args.kubeconfig), timeout_seconds=10)
        gpus, scalers = gather(kube, now_unix_seconds=time.time())
    except (StatusError, ConfigException) as exc:
        print(f"headroom status: error: {exc}", file=sys.stderr)
        return 1
    if args.output == "json":
        print(
            json.dumps(
                {"gpus": [asdict(g) for g in gpus], "aiscalers": [asdict(s) for s in scalers]},
                indent=2,
            )
        )
    else:
        print(render(gpus, scalers))
    return 0
