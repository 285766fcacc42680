"""The `headroom extender` subcommand: check the flags, then serve the extender under gunicorn.

Only argparse loads at import, so `headroom --help` stays fast.
"""

from __future__ import annotations

import argparse
import sys

from headroom import names
from headroom.dra import NVIDIA_GPU_DRIVER
from serving.server import add_arguments

EXTENDER_HELP = "Run the scheduler extender (filter, prioritize, bind by live GPU memory)."
EXTENDER_DESCRIPTION = (
    "Serve the kube-scheduler extender verbs: filter and score nodes by the GPU memory really "
    "free on each GPU (from the node agents' GPUNode reports and the pods bound to each node), "
    "and bind pods, committing their GPUs. Runs beside a kube-scheduler whose profile is "
    f"'{names.SCHEDULER_NAME}'; acts only while that scheduler holds its leader Lease."
)
APP = "extender.app:create_app"  # called with the ExtenderConfig


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("extender", help=EXTENDER_HELP, description=EXTENDER_DESCRIPTION)
    add = parser.add_argument
    add(
        "--kubeconfig",
        metavar="FILE",
        help="kubeconfig (default: $KUBECONFIG, ~/.kube/config, else in-cluster)",
    )
    add(
        "--policy",
        choices=["binpack", "spread"],
        default="binpack",
        help="how nodes are scored when a pod does not choose (default: binpack)",
    )
    add(
        "--staleness-seconds",
        type=float,
        default=names.DEFAULT_STALENESS_SECONDS,
        metavar="SECONDS",
        help="a GPU report older than this makes its node unfit "
        f"(default: {names.DEFAULT_STALENESS_SECONDS:.0f})",
    )
    add(
        "--leader-lease",
        metavar="NAMESPACE/NAME",
        default="",
        help="the Lease of the kube-scheduler beside this extender; the extender acts while "
        "that scheduler leads (default: none, always act)",
    )
    add(
        "--prometheus-url",
        metavar="URL",
        default="",
        help="the Prometheus the AIScalers' `prometheus` metrics ask when they name no "
        "serverAddress (default: none)",
    )
    add(
        "--scale-down-stabilization-seconds",
        type=int,
        metavar="SECONDS",
        default=None,
        help="the scale-down stabilisation window of AIScalers that set none (default: 300, HPA's)",
    )
    add(
        "--identity",
        metavar="NAME",
        default="",
        help="this pod's name, as the scheduler writes it in the Lease (default: hostname)",
    )
    add(
        "--gpu-device-classes",
        metavar="NAMES",
        default=NVIDIA_GPU_DRIVER,
        help="DeviceClasses whose ResourceClaim requests are GPU requests, comma-separated "
        f"(default: {NVIDIA_GPU_DRIVER}, NVIDIA's DRA driver)",
    )
    add(
        "--gpu-drivers",
        metavar="NAMES",
        default=NVIDIA_GPU_DRIVER,
        help=f"DRA drivers whose devices are GPUs, comma-separated (default: {NVIDIA_GPU_DRIVER})",
    )
    add(
        "--metrics-bind",
        metavar="HOST:PORT",
        default="",
        help="also serve /metrics, and nothing else, on this address, for Prometheus to scrape "
        "while the verbs stay on localhost, e.g. 0.0.0.0:9411 (default: none; /metrics is on "
        "--bind too)",
    )
    add_arguments(parser, default_bind="127.0.0.1:8888")  # a sidecar: localhost only
    parser.set_defaults(run=run)


def check(args: argparse.Namespace) -> str | None:
    """The first flag that cannot work, as a message naming it; None when all are fine."""
    from extender.config import ExtenderConfig  # noqa: PLC0415

    problem = ExtenderConfig.from_args(args).problem()
    if problem is None and args.workers != 1:
        return (
            "--workers: the extender keeps its reservations in one process; expected 1 "
            f"(got {args.workers}); use --threads for concurrency"
        )
    return problem


def run(args: argparse.Namespace) -> int:
    from extender.config import ExtenderConfig  # noqa: PLC0415
    from serving import server  # noqa: PLC0415

    problem = check(args)
    try:
        # gunicorn's worker imports the app by name and calls create_app(config) with this.
        options = server.options_from_args(
            args, app=APP, name="headroom-extender", config=ExtenderConfig.from_args(args)
        )
        server.validate(options)
    except server.ServeError as exc:
        problem = problem or str(exc)
    if problem:
        print(f"headroom extender: error: {problem}", file=sys.stderr)
        return 2
    return server.run(options)
