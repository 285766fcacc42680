"""The `kubectl-headroom` command: kubectl runs any `kubectl-NAME` on PATH as `kubectl NAME`, so
installing the package makes `kubectl headroom status | why POD | top` work.

kubectl hands a plugin its arguments and environment and nothing else, so the plugin reads the
kubeconfig itself as kubectl would: `--kubeconfig`, else $KUBECONFIG's files, else
~/.kube/config; `--context` picks a context; `-n` defaults to the context's namespace. The
connection flags are taken before or after the subcommand (`kubectl headroom --context c why x`).
Exit status: 0 answered, 1 an error a message explains, 2 a usage error. Heavy imports wait for a
command to run, so `--help` is fast.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from cli.cluster import DEFAULT_TIMEOUT_SECONDS, CliError, connect
from headroom import names
from headroom.dra import DEFAULT_GPU_DRIVERS, parse_names
from headroom.fields import FieldError

if TYPE_CHECKING:
    from cli.cluster import Cluster

PROG = "kubectl headroom"
DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)?")
UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def duration_seconds(text: str) -> float:
    """`10`, `10s`, `1.5m`: kubectl's --request-timeout forms, above zero."""
    match = DURATION.fullmatch(text.strip())
    seconds = float(match.group(1)) * UNIT_SECONDS[match.group(2)] if match else 0.0
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"expected a duration above 0 such as 10s (got {text!r})")
    return seconds


def positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"expected seconds above 0 (got {text!r})")
    return seconds


def device_classes(text: str) -> tuple[str, ...]:
    try:
        return parse_names(text, "--gpu-device-classes")
    except FieldError as exc:
        raise argparse.ArgumentTypeError(exc.message) from exc


def _connection_flags(parser: argparse.ArgumentParser, *, top_level: bool) -> None:
    """On the top level with their defaults; on each subcommand again without any, so a flag
    given before the subcommand is not overwritten by the subcommand's default."""

    def default(value: Any) -> Any:
        return value if top_level else argparse.SUPPRESS

    parser.add_argument(
        "--kubeconfig",
        metavar="FILE",
        default=default(None),
        help="kubeconfig (default: kubectl's)",
    )
    parser.add_argument(
        "--context", default=default(None), help="the kubeconfig context (default: its current)"
    )
    parser.add_argument(
        "-n",
        "--namespace",
        default=default(None),
        help="the pod's namespace (default: the context's, else default)",
    )
    parser.add_argument(
        "--request-timeout",
        type=duration_seconds,
        default=default(DEFAULT_TIMEOUT_SECONDS),
        metavar="DURATION",
        help=f"how long to wait for each answer, e.g. 30s (default {DEFAULT_TIMEOUT_SECONDS:g}s)",
    )


def _view_flags(parser: argparse.ArgumentParser, *, staleness: bool = True) -> None:
    parser.add_argument("-o", "--output", choices=["table", "json"], default="table")
    parser.add_argument(
        "--gpu-device-classes",
        type=device_classes,
        default=DEFAULT_GPU_DRIVERS,
        metavar="NAMES",
        help="comma-separated DRA DeviceClasses whose claims ask for GPUs, as the extender's "
        f"flag (default {','.join(DEFAULT_GPU_DRIVERS)})",
    )
    if staleness:
        parser.add_argument(
            "--staleness-seconds",
            type=positive_seconds,
            default=names.DEFAULT_STALENESS_SECONDS,
            help="a report older than this is stale, as the extender's flag "
            f"(default {names.DEFAULT_STALENESS_SECONDS:g})",
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Headroom from kubectl: GPU headroom, why a pod is pending, GPUs by free "
        "memory. Uses the kubeconfig kubectl would.",
    )
    _connection_flags(parser, top_level=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    status = sub.add_parser("status", help="GPU headroom per node and the AIScalers' decisions")
    _view_flags(status, staleness=False)
    status.set_defaults(run=run_status)
    why = sub.add_parser(
        "why",
        help="why a pending pod fits no node, or where it would go",
        description="Explain, node by node, what Headroom's scheduler extender says of the pod: "
        "the nodes it fits (best first, with their scores) and the reason for every other.",
    )
    why.add_argument("pod", metavar="POD", help="the pod's name (pod/NAME also works)")
    why.add_argument("--all-nodes", action="store_true", help="every node, not the best 10")
    why.add_argument(
        "--policy",
        choices=["binpack", "spread"],
        default="binpack",
        help="the extender's --policy, for pods that do not name one (default binpack)",
    )
    _view_flags(why)
    why.set_defaults(run=run_why)
    top = sub.add_parser("top", help="GPUs by free memory, with the pods on each")
    top.add_argument("--node", help="only this node's GPUs")
    _view_flags(top)
    top.set_defaults(run=run_top)
    for command in (status, why, top):
        _connection_flags(command, top_level=False)
    return parser


def run_status(cluster: Cluster, args: argparse.Namespace) -> str:
    from cli import status  # noqa: PLC0415

    gpus, scalers = status.gather(
        cluster, now_unix_seconds=time.time(), gpu_device_classes=args.gpu_device_classes
    )
    return status.show(gpus, scalers, output=args.output)


def run_why(cluster: Cluster, args: argparse.Namespace) -> str:
    from cli import live, whytext  # noqa: PLC0415
    from cli.why import explain  # noqa: PLC0415
    from extender.verbs import Settings  # noqa: PLC0415
    from headroom.fit import Policy  # noqa: PLC0415

    name = args.pod.split("/", 1)[1] if args.pod.startswith(("pod/", "pods/", "po/")) else args.pod
    explanation = explain(
        cluster,
        name,
        namespace=cluster.namespace,
        now_unix_seconds=time.time(),
        settings=Settings(staleness_seconds=args.staleness_seconds, policy=Policy(args.policy)),
        load=lambda c: live.load(c, device_classes=args.gpu_device_classes),
    )
    if args.output == "json":
        return json.dumps(whytext.as_json(explanation), indent=2)
    return whytext.render(explanation, all_nodes=args.all_nodes)


def run_top(cluster: Cluster, args: argparse.Namespace) -> str:
    from cli import live, top  # noqa: PLC0415

    rows, notes = top.gather(
        live.load(cluster, device_classes=args.gpu_device_classes),
        now_unix_seconds=time.time(),
        staleness_seconds=args.staleness_seconds,
        node=args.node,
    )
    if args.output == "json":
        return json.dumps(top.as_json(rows, notes), indent=2)
    return top.render(rows, notes)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # The extender's view logs pods it cannot read (counted as one whole GPU); the answer here
    # already counts them that way.
    logging.getLogger("extender").setLevel(logging.ERROR)
    try:
        cluster = connect(
            args.kubeconfig,
            context=args.context,
            namespace=args.namespace,
            timeout_seconds=args.request_timeout,
        )
        print(args.run(cluster, args))
    except CliError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
