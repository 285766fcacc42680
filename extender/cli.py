"""The `headroom extender` subcommand: check the flags, then serve the extender under gunicorn.

Only argparse loads at import, so `headroom --help` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.parse

from headroom import names
from serving.server import add_arguments

EXTENDER_HELP = "Run the scheduler extender (filter, prioritize, bind by live GPU memory)."
EXTENDER_DESCRIPTION = (
    "Serve the kube-scheduler extender verbs: filter and score nodes by the GPU memory really "
    "free on each GPU (from the node agents' GPUNode reports and the pods bound to each node), "
    "and bind pods, committing their GPUs. Runs beside a kube-scheduler whose profile is "
    f"'{names.SCHEDULER_NAME}'; acts only while that scheduler holds its leader Lease."
)
APP = "extender.app:create_app()"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("extender", help=EXTENDER_HELP,
                                   description=EXTENDER_DESCRIPTION)
    add = parser.add_argument
    add("--kubeconfig", metavar="FILE",
        help="kubeconfig (default: $KUBECONFIG, ~/.kube/config, else in-cluster)")
    add("--policy", choices=["binpack", "spread"], default="binpack",
        help="how nodes are scored when a pod does not choose (default: binpack)")
    add("--staleness-seconds", type=float, default=names.DEFAULT_STALENESS_SECONDS,
        metavar="SECONDS", help="a GPU report older than this makes its node unfit "
        f"(default: {names.DEFAULT_STALENESS_SECONDS:.0f})")
    add("--leader-lease", metavar="NAMESPACE/NAME", default="",
        help="the Lease of the kube-scheduler beside this extender; the extender acts while "
             "that scheduler leads (default: none, always act)")
    add("--prometheus-url", metavar="URL", default="",
        help="the Prometheus the AIScalers' `prometheus` metrics ask when they name no "
             "serverAddress (default: none)")
    add("--scale-down-stabilization-seconds", type=int, metavar="SECONDS", default=None,
        help="the scale-down stabilisation window of AIScalers that set none (default: 300, "
             "HPA's)")
    add("--identity", metavar="NAME", default="",
        help="this pod's name, as the scheduler writes it in the Lease (default: hostname)")
    add_arguments(parser, default_bind="127.0.0.1:8888")  # a sidecar: localhost only
    parser.set_defaults(run=run)


def check(args: argparse.Namespace) -> str | None:
    """The first flag that cannot work, as a message naming it; None when all are fine."""
    if not args.staleness_seconds > 0:
        return f"--staleness-seconds: expected seconds above 0 (got {args.staleness_seconds})"
    lease = args.leader_lease
    if lease and (lease.count("/") != 1 or not all(lease.split("/"))):
        return f"--leader-lease: expected NAMESPACE/NAME (got {lease!r})"
    url = urllib.parse.urlsplit(args.prometheus_url)
    if args.prometheus_url and (url.scheme not in ("http", "https") or not url.netloc):
        return ("--prometheus-url: expected an http(s) URL such as http://prometheus:9090 "
                f"(got {args.prometheus_url!r})")
    window = args.scale_down_stabilization_seconds
    if window is not None and not 0 <= window <= 3600:
        return f"--scale-down-stabilization-seconds: expected 0..3600 (got {window})"
    if args.workers != 1:
        return ("--workers: the extender keeps its reservations in one process; expected 1 "
                f"(got {args.workers}); use --threads for concurrency")
    return None


def run(args: argparse.Namespace) -> int:
    from extender.app import ENV_PREFIX  # noqa: PLC0415
    from serving import server as serving  # noqa: PLC0415

    problem = check(args)
    try:
        options = serving.options_from_args(args, app=APP, name="headroom-extender")
        serving.validate(options)
    except serving.ServeError as exc:
        problem = problem or str(exc)
    if problem:
        print(f"headroom extender: error: {problem}", file=sys.stderr)
        return 2
    # gunicorn's worker builds the app by name and reads its settings from the environment.
    os.environ.update({
        f"{ENV_PREFIX}KUBECONFIG": args.kubeconfig or "",
        f"{ENV_PREFIX}POLICY": args.policy,
        f"{ENV_PREFIX}STALENESS_SECONDS": str(args.staleness_seconds),
        f"{ENV_PREFIX}LEADER_LEASE": args.leader_lease,
        f"{ENV_PREFIX}IDENTITY": args.identity,
        f"{ENV_PREFIX}PROMETHEUS_URL": args.prometheus_url,
        f"{ENV_PREFIX}SCALE_DOWN_STABILIZATION_SECONDS":
            "" if args.scale_down_stabilization_seconds is None  # 0 is a window too
            else str(args.scale_down_stabilization_seconds),
    })
    return serving.run(options)
