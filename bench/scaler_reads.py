"""Benchmark of the AIScaler controller's ticks when one metric source is slow.

200 AIScalers, each with a Prometheus metric; the controller (`ScalerController.reconcile_due`,
the code the extender runs every second) reads them on its bounded pool. The API server is a
FakeKube (a dict lookup per call), the Prometheus servers are loopback stand-ins answering every
instant query, each in a process of its own. Two legs in the same run, alternating:

- baseline: every AIScaler asks a Prometheus that answers at once;
- one slow: one AIScaler asks a Prometheus that answers after 5 s, the other 199 the fast one.

Reported: how long the tick takes, how many rounds it ended, and when the slow AIScaler's round
ends. Target: the others' rounds end in under 1 s although one source takes 5 s (before this
controller read metrics concurrently, a tick waited for every read in turn: over 5 s). The legs
alternate (baseline, one slow; one slow, baseline; ...) and the baseline's first tick is given
with its spread over its legs; the first line printed names the versions the run used.

Run: `.venv/bin/python -m bench.scaler_reads [--scalers 200] [--slow-seconds 5] [--legs 3]`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from bench.runinfo import Spread, alternate, table, versions_line
from extender.scaler.controller import ScalerController
from extender.verbs import Settings
from extender.view import ClusterView
from tests.extender.scaler.rounds import PrometheusProcess, aiscaler, cluster, running


def one_tick(
    scaler_count: int, *, fast: PrometheusProcess, slow: PrometheusProcess | None
) -> tuple[float, int, float]:
    """(the first tick's seconds, the rounds it ended, seconds until every round has ended)."""
    names_ = [f"s{i:03d}" for i in range(scaler_count)]
    scalers = [
        aiscaler(n, slow.url if slow is not None and i == 0 else fast.url)
        for i, n in enumerate(names_)
    ]
    pods = [running(n) for n in names_]
    controller = ScalerController(
        kube=cluster(*names_),
        view=ClusterView(),
        scalers=lambda: scalers,
        pods=lambda: pods,
        is_leader=lambda: True,
        settings=Settings(),
    )
    try:
        start = time.perf_counter()
        first = controller.reconcile_due()
        tick = time.perf_counter() - start
        ended = first
        while ended < scaler_count:  # the extender ticks every second; here, at once
            ended += controller.reconcile_due()
        return tick, first, time.perf_counter() - start
    finally:
        controller.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scalers", type=int, default=200)
    parser.add_argument("--slow-seconds", type=float, default=5.0)
    parser.add_argument("--legs", type=int, default=3, help="runs of each leg, alternating")
    args = parser.parse_args(argv)
    print(versions_line())
    fast = PrometheusProcess(40)
    slow = PrometheusProcess(40, delay_seconds=args.slow_seconds)
    try:
        runs = alternate(
            {
                "baseline": lambda: one_tick(args.scalers, fast=fast, slow=None),
                "one slow": lambda: one_tick(args.scalers, fast=fast, slow=slow),
            },
            rounds=args.legs,
        )
    finally:
        fast.close()
        slow.close()
    first_tick = {leg: [tick for tick, _, _ in ticks] for leg, ticks in runs.items()}
    rounds_in_first = {leg: [ended for _, ended, _ in ticks] for leg, ticks in runs.items()}
    all_done = {leg: [done for _, _, done in ticks] for leg, ticks in runs.items()}
    rows = [
        [
            leg,
            f"{args.scalers}",
            f"{statistics.median(first_tick[leg]) * 1000:.0f}",
            f"{max(first_tick[leg]) * 1000:.0f}",
            f"{min(rounds_in_first[leg])}",
            f"{statistics.median(all_done[leg]):.2f}",
        ]
        for leg in ("baseline", "one slow")
    ]
    print(f"AIScaler ticks, one Prometheus answering after {args.slow_seconds:g} s (target: the")
    print("others' rounds end in the first tick, under 1 s)")
    print(
        table(
            [
                "leg",
                "AIScalers",
                "first tick ms (p50)",
                "max",
                "rounds ended in it (min)",
                "all rounds ended s (p50)",
            ],
            rows,
        )
    )
    ratio = statistics.median(first_tick["one slow"]) / statistics.median(first_tick["baseline"])
    baseline_ms = Spread.of([seconds * 1000 for seconds in first_tick["baseline"]])
    print(
        f"first tick, one slow / baseline: {ratio:.2f}; baseline's first tick "
        f"{baseline_ms.describe(' ms', 0)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
