"""The tables bench/scheduler.py prints for one node count, from its rounds and its traced batch.

Throughput per leg (median pods/s with its range, the median of the rounds' ratios), CPU per pod
by process, the scheduler's own cycle per pod, and the extender's added time per pod split by
verb: as the scheduler waits on it (the loopback), as the extender serves it (its histogram), and
the difference between the two (HTTP, gunicorn, the threads' hand-offs).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.extender_cluster import Batch, table
from bench.runinfo import Spread, percentile
from bench.scheduler_metrics import Histogram
from bench.scheduler_wire import Exchanges

VERBS = ("filter", "prioritize", "bind")


@dataclass
class Round:
    """One batch of one leg, with what it added to the metrics and the CPU times."""

    leg: str
    batch: Batch
    cycle: Histogram  # scheduling_algorithm_duration_seconds: snapshot, filter, score
    attempt: Histogram  # scheduling_attempt_duration_seconds, scheduled: the cycle to bound
    unscheduled: float  # attempts that did not end scheduled
    cpu_ms_per_pod: dict[str, float]
    verbs: dict[str, Histogram] = field(default_factory=dict)  # the extender's server time


@dataclass(frozen=True)
class Traced:
    """The headroom batch run with the loopback tapped."""

    round: Round
    exchanges: Exchanges | None  # None: no tap (no CAP_NET_RAW)
    dropped_segments: int
    gunicorn_ms: dict[str, list[float]]  # verb: gunicorn's time per request (its access log)


@dataclass(frozen=True)
class NodeCountResult:
    node_count: int
    cpus: str  # shared, pinned, ...
    pods: int
    rounds: dict[str, list[Round]]  # leg: its rounds, in run order
    traced: Traced
    idle_cpu_per_second: dict[str, float]
    setup_seconds: float
    total_seconds: float


def merged(histograms: Sequence[Histogram]) -> Histogram:
    """One histogram of all the observations of several (the same buckets)."""
    buckets: dict[float, float] = {}
    for one in histograms:
        for bound, count in one.buckets:
            buckets[bound] = buckets.get(bound, 0.0) + count
    return Histogram(
        count=sum(h.count for h in histograms),
        sum_seconds=sum(h.sum_seconds for h in histograms),
        buckets=tuple(sorted(buckets.items())),
    )


def render(result: NodeCountResult) -> str:
    cpus = result.cpus
    rounds = len(next(iter(result.rounds.values())))
    title = (
        f"\n### {result.node_count:,} nodes, {cpus} ({result.pods} pods a batch, {rounds} rounds "
        f"per leg; setup {result.setup_seconds:.0f} s, all {result.total_seconds / 60:.1f} min)"
    )
    parts = [title, throughput(result), cpu_table(result), cycle_table(result)]
    parts.append(verb_table(result))
    return "\n\n".join(parts)


def throughput(result: NodeCountResult) -> str:
    baselines = [leg for leg in ("stock", "stock, qps 50") if leg in result.rounds]
    rows = []
    for leg, rounds in result.rounds.items():
        rates = [r.batch.pods_per_second for r in rounds]
        row = [
            leg,
            Spread.of(rates).describe(digits=1),
            f"{statistics.median(r.batch.created_seconds for r in rounds):.2f}",
        ]
        for baseline in baselines:
            base = [r.batch.pods_per_second for r in result.rounds[baseline]]
            ratios = [a / b for a, b in zip(rates, base, strict=True)]
            row.append(f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})")
        rows.append(row)
    traced = result.traced.round.batch
    rows.append(
        [
            "headroom, loopback tapped (1 batch)",
            f"{traced.pods_per_second:.1f}",
            "",
            *[""] * len(baselines),
        ]
    )
    first = next(iter(result.rounds.values()))[0].batch
    how = (
        "timed from the scheduler resuming with the batch queued (stopped while its pods were "
        "created, 6 s at most)"
        if first.held
        else "timed from the first create to the last pod bound"
    )
    return f"pods/s, {how}:\n" + table(
        [
            "leg",
            "pods/s",
            "creates took (s, median)",
            *(f"÷ {b} (median of rounds)" for b in baselines),
        ],
        rows,
    )


def cpu_table(result: NodeCountResult) -> str:
    names = list(next(iter(result.rounds.values()))[0].cpu_ms_per_pod)
    control_plane = [n for n in names if n not in ("extender", "client")]
    rows = []
    for leg, rounds in result.rounds.items():
        medians = {n: statistics.median(r.cpu_ms_per_pod[n] for r in rounds) for n in names}
        total = sum(medians[n] for n in control_plane)
        rows.append([leg, *(f"{medians[n]:.2f}" for n in names), f"{total:.2f}"])
    idle = ", ".join(
        f"{name} {1000 * rate:.0f}" for name, rate in result.idle_cpu_per_second.items()
    )
    return (
        "CPU ms per pod (median of rounds), less each process's idle rate for the batch's "
        f"duration (idle, ms per s: {idle}):\n" + table(["leg", *names, "control plane, all"], rows)
    )


def cycle_table(result: NodeCountResult) -> str:
    rows = []
    for leg, rounds in result.rounds.items():
        cycle, attempt = merged([r.cycle for r in rounds]), merged([r.attempt for r in rounds])
        rows.append(
            [
                leg,
                f"{cycle.mean_ms:.2f}",
                f"{cycle.quantile_ms(0.5):.2f}",
                f"{attempt.mean_ms:.1f}",
                f"{attempt.quantile_ms(0.5):.1f}",
                f"{sum(r.unscheduled for r in rounds):.0f}",
            ]
        )
    return "The scheduler's own metrics per pod, ms (all rounds):\n" + table(
        [
            "leg",
            "cycle mean (snapshot, filter, score)",
            "cycle p50",
            "attempt to bound, mean",
            "p50",
            "attempts not scheduled",
        ],
        rows,
    )


def verb_table(result: NodeCountResult) -> str:
    traced = result.traced
    exchanges, pods = traced.exchanges, traced.round.batch.pods
    rows, wire_means = [], {}
    for verb in VERBS:
        server = traced.round.verbs[verb]
        wire = [e.elapsed_ms for e in exchanges.done if e.verb == verb] if exchanges else []
        wire_means[verb] = _mean(wire)
        gunicorn = traced.gunicorn_ms.get(verb, [])
        rows.append(
            [
                verb,
                f"{(len(wire) if exchanges else server.count) / pods:.2f}",
                f"{_mean(wire):.2f} / {_p50(wire):.2f}",
                f"{_mean(gunicorn):.2f} / {_p50(gunicorn):.2f}",
                f"{server.mean_ms:.2f} / ≈{server.quantile_ms(0.5):.2f}",
                f"{_mean(wire) - server.mean_ms:.2f} / {_p50(wire) - server.quantile_ms(0.5):.2f}",
            ]
        )
    return (
        "The extender's added time per pod, ms, mean / p50 (the tapped batch):\n"
        + table(
            [
                "verb",
                "calls per pod",
                "the scheduler waits (on the wire)",
                "gunicorn (access log)",
                "extender server time (its histogram)",
                "difference: wire - server",
            ],
            rows,
        )
        + "\n\n"
        + "\n".join(verb_notes(result, wire_means))
    )


def verb_notes(result: NodeCountResult, wire_means: dict[str, float]) -> list[str]:
    traced = result.traced.round.cycle.mean_ms
    rounds = merged([r.cycle for r in result.rounds["headroom"]]).mean_ms
    without = merged([r.cycle for r in result.rounds["stock"]]).mean_ms
    on_wire = wire_means["filter"] + wire_means["prioritize"]
    notes = [
        f"Scheduling cycle per pod, mean: {without:.2f} ms without the extender, {rounds:.2f} "
        f"with it (+{rounds - without:.2f} ms); in the tapped batch {traced:.2f} ms, of which "
        f"filter and prioritize on the wire {on_wire:.2f} ms and the rest of the added time "
        f"{traced - without - on_wire:.2f} ms: the scheduler's own side of the calls (JSON, "
        "node lists, its goroutine woken when an answer comes). Bind runs in the binding "
        "goroutines, off the cycle."
    ]
    exchanges = result.traced.exchanges
    if exchanges is not None:
        notes.append(
            f"Connections the scheduler opened to the extender: {exchanges.connections_opened} "
            f"for {len(exchanges.done)} calls; segments the tap dropped: "
            f"{result.traced.dropped_segments}."
        )
    return notes


def _mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def _p50(values: Sequence[float]) -> float:
    return percentile(values, 0.5) if values else float("nan")
