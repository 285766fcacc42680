"""The `headroom nodeagent` subcommand: run the node agent, or print one report (`--once`).

Only argparse and the flag parsers are imported at module level so `headroom --help` stays fast;
`run` imports the agent (and with it pynvml and the Kubernetes client) when it is needed. Every flag
is checked before anything starts, and a bad one is refused with a message naming it.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import math
import os
import re
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from serving.address import split_host_port

NODEAGENT_HELP = "Report this node's GPUs (NVML) as its GPUNode; serve /metrics."
NODEAGENT_DESCRIPTION = (
    "Read the node's GPUs through NVML every --interval-seconds, attribute GPU processes to pods "
    "from /proc/<pid>/cgroup, and write the node's GPUNode status when something material "
    "changed (health, the set of pods, memory beyond --deadband) or at the --heartbeat-seconds. "
    "Serves /metrics, /healthz and /livez on --metrics-bind. With --device-taints, keeps a DRA "
    "DeviceTaintRule on each unhealthy GPU's device so the stock DRA allocator skips it. With "
    "--once, print one report as JSON and write nothing (exit 1 when NVML is not usable)."
)
DEVICE_TAINTS = ("off", "NoSchedule", "NoExecute")
DEFAULT_GPU_DRIVER = "gpu.nvidia.com"  # headroom.dra's default, spelt here to keep --help fast
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
DEFAULT_METRICS_BIND = "0.0.0.0:9410"


def seconds(*, minimum: float, example: str) -> Any:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < minimum:
            raise argparse.ArgumentTypeError(
                f"expected a number of seconds >= {minimum:g}, such as {example} (got {text!r})"
            )
        return value

    return parse


def byte_quantity(text: str) -> int:
    from headroom.quantity import QuantityError, parse_bytes  # noqa: PLC0415 - keep --help fast

    try:
        return parse_bytes(text, field="--deadband")
    except QuantityError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--deadband: ")) from exc


def host_port(text: str) -> tuple[str, int]:
    """HOST:PORT, [IPv6]:PORT; the host an IP address or `localhost`, the port 0..65535."""
    expected = f"expected HOST:PORT such as {DEFAULT_METRICS_BIND} or [::]:9410 (got {text!r})"
    parsed = split_host_port(text)
    if parsed is None:
        raise argparse.ArgumentTypeError(expected)
    host, port = parsed
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(expected) from exc
    return host, port


def device_taints(text: str) -> str:
    if text not in DEVICE_TAINTS:
        raise argparse.ArgumentTypeError(
            f"expected one of {', '.join(DEVICE_TAINTS)}: the effect of the taints, or off "
            f"(got {text!r})"
        )
    return text


def driver_names(text: str) -> tuple[str, ...]:
    from headroom.dra import parse_names  # noqa: PLC0415 - keep --help fast
    from headroom.fields import FieldError  # noqa: PLC0415

    try:
        return parse_names(text, "--gpu-drivers")
    except FieldError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--gpu-drivers: ")) from exc


def directory(text: str) -> Path:
    path = Path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"expected a directory such as /proc (got {text!r})")
    return path


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "nodeagent", help=NODEAGENT_HELP, description=NODEAGENT_DESCRIPTION
    )
    add = parser.add_argument
    add(
        "--node-name",
        metavar="NAME",
        default=os.environ.get("NODE_NAME"),
        help="the Node this agent runs on (default: $NODE_NAME; required)",
    )
    add(
        "--kubeconfig",
        metavar="FILE",
        help="kubeconfig to use (default: $KUBECONFIG, ~/.kube/config, else in-cluster)",
    )
    add(
        "--interval-seconds",
        type=seconds(minimum=0.1, example="5"),
        default=5.0,
        help="how often to read the GPUs (default: 5)",
    )
    add(
        "--heartbeat-seconds",
        type=seconds(minimum=1, example="30"),
        default=30.0,
        help="write the report at least this often, changed or not (default: 30); readers "
        "treat a report older than 3 heartbeats as stale",
    )
    add(
        "--deadband",
        type=byte_quantity,
        default=256 * 2**20,
        metavar="QUANTITY",
        help="memory changes up to this much are not worth a write (default: 256Mi)",
    )
    add(
        "--proc-root",
        type=directory,
        default=Path("/proc"),
        metavar="DIR",
        help="where to read <pid>/cgroup (default: /proc; needs the host PID namespace)",
    )
    add(
        "--xid-hold-seconds",
        type=seconds(minimum=0, example="600"),
        default=600.0,
        help="how long a critical XID keeps its GPU unhealthy (default: 600; 0: none does, "
        "they are only counted in /metrics)",
    )
    add(
        "--metrics-bind",
        type=host_port,
        default=host_port(DEFAULT_METRICS_BIND),
        metavar="HOST:PORT",
        help=f"where to serve /metrics, /healthz, /livez (default: {DEFAULT_METRICS_BIND})",
    )
    add(
        "--device-taints",
        type=device_taints,
        default="off",
        metavar="|".join(DEVICE_TAINTS),
        help="keep a DRA DeviceTaintRule with this effect on the device of each GPU this agent "
        "finds unhealthy (lost, critical XID, NVML errors), so the stock DRA allocator skips it; "
        "removed when the GPU is healthy again (default: off)",
    )
    add(
        "--gpu-drivers",
        type=driver_names,
        default=(DEFAULT_GPU_DRIVER,),
        metavar="NAMES",
        help="DRA drivers whose devices are GPUs, comma-separated; only their devices are "
        f"tainted (default: {DEFAULT_GPU_DRIVER})",
    )
    add("--once", action="store_true", help="print one report as JSON and exit; writes nothing")
    parser.set_defaults(run=run)


def _fail(message: str) -> int:
    print(f"headroom nodeagent: error: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    node_name = args.node_name or ""
    if not node_name:
        return _fail(
            "--node-name: required (or set NODE_NAME, as the DaemonSet does from spec.nodeName)"
        )
    if len(node_name) > 253 or not _DNS_SUBDOMAIN.fullmatch(node_name):
        return _fail(
            f"--node-name: expected a Node name (lower-case RFC 1123 subdomain, at most "
            f"253 characters) (got {node_name!r})"
        )
    if args.heartbeat_seconds < args.interval_seconds:
        return _fail(
            f"--heartbeat-seconds: must be at least --interval-seconds "
            f"({args.interval_seconds:g}) (got {args.heartbeat_seconds:g})"
        )
    logging.basicConfig(
        level=logging.WARNING if args.once else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Imported here: pynvml, prometheus_client and the Kubernetes client load only to run.
    from nodeagent.agent import AgentConfig, StartupError, run_agent, sample_once  # noqa: PLC0415

    config = AgentConfig(
        node_name=node_name,
        interval_seconds=args.interval_seconds,
        heartbeat_seconds=args.heartbeat_seconds,
        deadband_bytes=args.deadband,
        proc_root=args.proc_root,
        xid_hold_seconds=args.xid_hold_seconds,
        metrics_host=args.metrics_bind[0],
        metrics_port=args.metrics_bind[1],
        kubeconfig=args.kubeconfig,
        device_taints=args.device_taints,
        gpu_drivers=args.gpu_drivers,
    )
    if args.once:
        from headroom.report import report_to_status  # noqa: PLC0415

        report = sample_once(config)
        print(json.dumps(report_to_status(report), indent=2))
        return 0 if report.healthy else 1
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        return run_agent(config, stop)
    except StartupError as exc:
        return _fail(str(exc))
