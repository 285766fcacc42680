"""The `headroom` command: one subcommand per process.

Each component owns its subcommand in its own `cli` module (`register(subparsers)` adds the parser,
the parser's `run` default does the work); heavy imports happen inside `run`, so `--help` is fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from certs import cli as certs_cli
from cli import status as status_cli
from extender import cli as extender_cli
from nodeagent import cli as nodeagent_cli
from webhook import cli as webhook_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="headroom",
        description=(
            "Place and scale GPU model-serving pods on Kubernetes by the GPU memory that is "
            "really free."
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    certs_cli.register(sub)
    extender_cli.register(sub)
    nodeagent_cli.register(sub)
    status_cli.register(sub)
    webhook_cli.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    status: int = args.run(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
