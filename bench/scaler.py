"""Benchmark of the AIScaler's reconcile round: 200 AIScalers over a 5,000-node view.

A round is the controller's work once the metrics are in (no network): the view's schedulable
nodes and their snapshots, the round's CapacityIndex, then `evaluate` for every AIScaler (decide,
feasibility over the index, the count to write), each with its history from the round before.

- The view: GPU kinds H100/A100 80Gi, A100 40Gi (8 per node), L40S 48Gi, L4 24Gi (4 per node);
  2% of nodes with a stale report, 1% unreadable, 2% of GPUs unhealthy; bound pods as the watch
  cache would deliver them (exclusive pods, shared pods with assigned GPUs, pods Headroom does
  not know, pods bound but not reported yet), and 0.5% of nodes new and empty.
- 200 AIScalers, seed and full form alternating, six pod templates (shared 8Gi, 16Gi, 30Gi on 2
  GPUs; exclusive 40Gi, 4 x 70Gi, 8 x 75Gi); the 8-GPU one fits (almost) only on the new nodes,
  so some of its AIScalers are limited by headroom and some are not. Observations are precomputed
  per round (queue depths, a Prometheus total for the full form, some Pending pods, a refused
  scrape).
- cold: every summary the round needs is computed in it (the usual case: agents' heartbeats are
  shorter than the polling interval, so every report has changed); warm: the round before's index
  lends its summaries of unchanged snapshots (`CapacityIndex(..., previous=...)`). Each case times
  `--rounds` rounds after one untimed round, in `--legs` legs (each from fresh histories).

Baseline, same run: the straightforward path (`feasible_replicas_by_placement`: place_replicas one
replica at a time over every snapshot, then fit on every node), timed on one AIScaler per template
and extrapolated to the round by template counts (placing 200 AIScalers that way takes far too
long); the sampled answers are checked equal to the index's. Target: a round <= 1 s on 2 cores.

The three legs (cold, warm, baseline) alternate, `--legs` times each, so that a busy moment of the
machine falls on all alike; the baseline is given with its spread over its legs, and the first line
printed names the versions the run used.

Run: `.venv/bin/python -m bench.scaler` (`--quick`: 500 nodes, 40 AIScalers, 6 rounds in 2 legs).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

from bench.runinfo import Spread, alternate, percentile, table, versions_line
from bench.scaler_setup import Scaler, build_scalers, build_view
from extender.scaler.decision import History, decide
from extender.scaler.evaluate import ScalingOutcome, evaluate
from extender.scaler.feasibility import (
    LimitReason,
    apply_feasibility,
    feasible_replicas_by_placement,
)
from extender.view import ClusterView
from headroom.capacity import CapacityIndex
from headroom.fit import NodeSnapshot, Policy

STALENESS_SECONDS = 3600.0  # as bench/extender.py: rounds advance the clock, reports stay fresh
POLLING_SECONDS = 15


# -- rounds ---------------------------------------------------------------------------------------
@dataclass
class RoundTimes:
    index_ms: float
    total_ms: float
    summarised: int  # nodes the round's questions needed a summary of


def one_round(
    view: ClusterView,
    scalers: list[Scaler],
    *,
    round_: int,
    now: float,
    previous: CapacityIndex | None,
) -> tuple[RoundTimes, CapacityIndex, list[ScalingOutcome]]:
    start = time.perf_counter()
    snapshots = [view.snapshot(n) for n in view.schedulable_nodes()]
    index = CapacityIndex(snapshots, previous=previous)
    built = time.perf_counter()
    outcomes = []
    for scaler in scalers:
        outcome = evaluate(
            scaler.spec,
            scaler.rounds[round_],
            scaler.history,
            demand=scaler.demand,
            snapshots=index,
            placed_replicas=scaler.current - scaler.pending,
            now_unix_seconds=now,
            staleness_seconds=STALENESS_SECONDS,
            policy=Policy.BINPACK,
        )
        scaler.history = outcome.decision.history
        outcomes.append(outcome)
    done = time.perf_counter()
    return (
        RoundTimes((built - start) * 1000, (done - start) * 1000, len(index.summaries)),
        index,
        outcomes,
    )


def run_rounds(
    view: ClusterView, scalers: list[Scaler], *, rounds: int, now: float, warm: bool
) -> tuple[list[RoundTimes], list[ScalingOutcome]]:
    """Times rounds 1..rounds after an untimed round 0 (fresh histories), whose outcomes it
    returns: the answers the baseline must give."""
    for scaler in scalers:
        scaler.history = History()
    _, previous, first = one_round(view, scalers, round_=0, now=now, previous=None)
    times = []
    for r in range(1, rounds + 1):
        took, index, _ = one_round(
            view,
            scalers,
            round_=r,
            now=now + r * POLLING_SECONDS,
            previous=previous if warm else None,
        )
        times.append(took)
        previous = index
    return times, first


def baseline(
    view: ClusterView,
    scalers: list[Scaler],
    first: list[ScalingOutcome],
    *,
    now: float,
    per_template: int,
) -> tuple[float, int]:
    """Extrapolated ms for a whole round the straightforward way, and how many were timed."""
    snapshots: list[NodeSnapshot] = [view.snapshot(n) for n in view.schedulable_nodes()]
    seconds: dict[int, list[float]] = {}
    for j, scaler in enumerate(scalers):
        if len(seconds.setdefault(scaler.template, [])) >= per_template:
            continue
        placed = scaler.current - scaler.pending
        start = time.perf_counter()
        decision = decide(scaler.spec, scaler.rounds[0], History(), now)
        headroom = feasible_replicas_by_placement(
            scaler.demand,
            snapshots,
            now_unix_seconds=now,
            staleness_seconds=STALENESS_SECONDS,
            current_placed=placed,
            max_replicas=scaler.spec.max_replicas,
        )
        limited = apply_feasibility(decision, headroom, ready_or_placed=placed, spec=scaler.spec)
        seconds[scaler.template].append(time.perf_counter() - start)
        if (headroom, limited) != (first[j].headroom, first[j].limited):
            raise SystemExit(
                f"AIScaler {j}: the index answered {first[j].headroom}, "
                f"{first[j].limited}; placing one by one {headroom}, {limited}"
            )
    counts = Counter(s.template for s in scalers)
    round_seconds = sum(counts[t] * statistics.mean(v) for t, v in seconds.items())
    return round_seconds * 1000, sum(len(v) for v in seconds.values())


def row(label: str, times: list[RoundTimes], *, nodes: int, scalers: int) -> list[str]:
    totals = [t.total_ms for t in times]
    per_scaler_us = statistics.median((t.total_ms - t.index_ms) * 1000 / scalers for t in times)
    return [
        label,
        f"{nodes}",
        f"{scalers}",
        f"{len(times)}",
        f"{statistics.median(t.index_ms for t in times):.1f}",
        f"{statistics.median(totals):.1f}",
        f"{percentile(totals, 0.99):.1f}",
        f"{max(totals):.1f}",
        f"{per_scaler_us:.0f}",
        f"{statistics.median(t.summarised for t in times):.0f}",
    ]


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--scalers", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=30, help="timed rounds per case")
    parser.add_argument("--legs", type=int, default=3, help="alternating legs of each case")
    parser.add_argument(
        "--baseline-per-template",
        type=int,
        default=1,
        help="AIScalers per template timed the straightforward way",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a small run: 500 nodes, 40 AIScalers, 6 rounds in 2 legs",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.nodes, args.scalers, args.rounds, args.legs = 500, 40, 6, 2
    if args.legs < 1 or args.rounds < args.legs:
        parser.error(f"--legs: expected 1 to --rounds ({args.rounds}), got {args.legs}")
    return args


@dataclass
class Measured:
    view: ClusterView
    first: list[ScalingOutcome]  # round 0's answers, which the baseline must give
    cold: list[RoundTimes] = field(default_factory=list)
    warm: list[RoundTimes] = field(default_factory=list)
    baseline_ms: list[float] = field(default_factory=list)  # per leg, extrapolated to a round
    baseline_timed: int = 0  # AIScalers the baseline timed per leg


def measure(args: argparse.Namespace) -> Measured:
    """The three legs, alternating."""
    now = time.time()
    view = build_view(args.nodes, now)
    per_leg = args.rounds // args.legs
    scalers = build_scalers(args.scalers, per_leg)
    gc.collect()
    gc.freeze()  # what the extender does once its caches have synced
    _, first = run_rounds(view, scalers, rounds=0, now=now, warm=False)  # deterministic
    out = Measured(view, first)

    def cold() -> None:
        out.cold += run_rounds(view, scalers, rounds=per_leg, now=now, warm=False)[0]

    def warm() -> None:
        out.warm += run_rounds(view, scalers, rounds=per_leg, now=now, warm=True)[0]

    def straightforward() -> None:
        ms, out.baseline_timed = baseline(
            view, scalers, first, now=now, per_template=args.baseline_per_template
        )
        out.baseline_ms.append(ms)

    alternate({"cold": cold, "warm": warm, "baseline": straightforward}, rounds=args.legs)
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    print(versions_line())
    measured = measure(args)
    cold, warm, first = measured.cold, measured.warm, measured.first
    size = {"nodes": len(measured.view.schedulable_nodes()), "scalers": args.scalers}
    print("(a) one reconcile round, ms (target: <= 1000 ms for 200 AIScalers over 5,000 nodes)")
    print(
        table(
            [
                "case",
                "nodes",
                "AIScalers",
                "rounds",
                "snapshots + index p50",
                "round p50",
                "p99",
                "max",
                "per AIScaler us (p50)",
                "nodes summarised",
            ],
            [row("cold (nothing lent)", cold, **size), row("warm (summaries lent)", warm, **size)],
        )
    )
    cold_p50 = statistics.median(t.total_ms for t in cold)
    base = Spread.of(measured.baseline_ms)
    print(
        f"\n(b) baseline: place_replicas one by one, timed on {measured.baseline_timed} "
        f"AIScalers (one per template) in each of {args.legs} legs, extrapolated by template "
        "counts; same answers checked"
    )
    print(
        table(
            [
                "path",
                "round ms (extrapolated)",
                "per AIScaler ms (mean)",
                "cold p50 ms",
                "speed-up",
            ],
            [
                [
                    "place_replicas",
                    base.describe(digits=0),
                    f"{base.median / args.scalers:.0f}",
                    f"{cold_p50:.1f}",
                    f"{base.median / cold_p50:.0f}x",
                ]
            ],
        )
    )
    blocked = sum(o.headroom.blocked for o in first)
    limited = sum(o.limited.reason is LimitReason.INSUFFICIENT_GPU_HEADROOM for o in first)
    print(
        f"\nround 1: {blocked} of {args.scalers} AIScalers could not fit up to maxReplicas, "
        f"{limited} limited by GPU headroom (InsufficientGPUHeadroom)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
