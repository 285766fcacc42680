"""The demo's command line, `python -m tooling.demo` (what `make demo` runs). The demo is
developer tooling: it needs this repository (the control plane build, the fake NVML sources), so
the installed `headroom` command does not carry it. Only argparse loads at import."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

SCENARIOS = Path(__file__).parent / "scenarios"
DEMO_HELP = "Run Headroom's whole loop locally: real control plane, simulated GPU nodes, a load."
DEMO_DESCRIPTION = (
    "Start a local Kubernetes control plane with Headroom installed from manifests/ (the "
    "webhook over TLS, the headroom kube-scheduler with its extender, the AIScaler controller), "
    "simulated GPU nodes each with a real node agent on a fake NVML, and a simulated kubelet; "
    "deploy a model and its AIScaler, drive the scenario's load, show it live, and end with a "
    "summary. Exit 0 when the scenario's expectations held, 1 when not, 2 for a bad scenario, "
    "130 when interrupted. Ctrl-C stops everything it started."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tooling.demo", description=DEMO_DESCRIPTION)
    add = parser.add_argument
    add(
        "--scenario",
        metavar="FILE",
        type=Path,
        default=SCENARIOS / "default.yaml",
        help="the scenario file (default: the packaged default.yaml; see scenarios/short.yaml)",
    )
    add(
        "--summary-json",
        metavar="FILE",
        type=Path,
        help="also write the end summary as JSON to FILE",
    )
    add(
        "--workdir",
        metavar="DIR",
        type=Path,
        help="where logs, certificates and state go (default: a new temporary directory, "
        "removed when the demo passes)",
    )
    add(
        "--plain",
        action="store_true",
        help="print plain progress lines instead of redrawing the terminal",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    from tooling.demo.run import Options, run_demo  # noqa: PLC0415

    live = sys.stdout.isatty() and not args.plain and os.environ.get("TERM") != "dumb"
    return run_demo(
        Options(
            scenario=args.scenario, summary_json=args.summary_json, workdir=args.workdir, live=live
        )
    )
