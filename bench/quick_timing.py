"""Quick mode's timing (bench/quick.py): each call timed alone, two legs alternating with the
collector paused inside them, and a measure as the ratio of the two legs' statistics.

- `run_legs`: one untimed round, then `rounds` alternating rounds; every leg makes its passes over
  its calls, timing each alone, after a collection and with the collector off.
- `compare`: a statistic of every leg (`quantile`, or `per_call`: each call's percentile, summed),
  the median over the legs of each side, their ratio, and the baseline's spread over its legs.
- `twice`: the bench-only 2x regression (`--inject-slowdown`).
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench.runinfo import Spread, alternate, percentile


@dataclass(frozen=True)
class Result:
    """One measure: ours and the baseline's statistic (ms, the median over the legs of each leg's
    percentile), the baseline's spread over its legs, the ratio and its threshold."""

    measure: str
    value_ms: float
    baseline_ms: float
    baseline_spread: Spread
    ratio: float
    threshold: float
    what: str = ""  # what the value is the cost of, if not one call
    remeasured: bool = False

    @property
    def ok(self) -> bool:
        return self.ratio <= self.threshold


@dataclass(frozen=True)
class Options:
    rounds: int  # alternating rounds per group
    inject: frozenset[str]  # groups whose timed call does its work twice
    clock: Callable[[], int]  # ns; wall (perf_counter_ns) or this thread's CPU time


def timed(
    calls: Sequence[Callable[[], object]], passes: int, clock: Callable[[], int]
) -> list[float]:
    """`passes` passes over `calls`, each call timed alone: ms."""
    samples_ms = []
    for _ in range(passes):
        for call in calls:
            started = clock()
            call()
            samples_ms.append((clock() - started) / 1e6)
    return samples_ms


def twice(call: Callable[[], object]) -> Callable[[], object]:
    def both() -> object:
        call()
        return call()

    return both


def compare(
    measure: str,
    runs: dict[str, list[list[float]]],
    *,
    ours: str,
    base: str,
    statistic: Callable[[list[float]], float],
    threshold: float,
    what: str = "",
) -> Result:
    """`statistic` of each leg, and the ratio of its medians over the legs: a busy moment spoils a
    leg, not the measure (pooling every call, one leg's bad tail moved p99)."""
    mine = Spread.of([statistic(leg) for leg in runs[ours]])
    theirs = Spread.of([statistic(leg) for leg in runs[base]])
    return Result(
        measure=measure,
        value_ms=mine.median,
        baseline_ms=theirs.median,
        baseline_spread=theirs,
        ratio=mine.median / theirs.median,
        threshold=threshold,
        what=what,
    )


def quantile(q: float) -> Callable[[list[float]], float]:
    return lambda samples: percentile(samples, q)


def per_call(q: float, calls: int) -> Callable[[list[float]], float]:
    """The sum over the leg's `calls` calls (taken in turn) of each one's `q` percentile."""
    return lambda samples: sum(percentile(samples[i::calls], q) for i in range(calls))


def run_legs(
    legs: dict[str, Sequence[Callable[[], object]]], *, passes: int, options: Options
) -> dict[str, list[list[float]]]:
    """One untimed round to warm up, then `options.rounds` alternating rounds, each leg making
    `passes` passes over its calls in each."""
    clock = options.clock

    def leg(calls: Sequence[Callable[[], object]]) -> Callable[[], list[float]]:
        def one_leg() -> list[float]:
            # The collector runs before the leg, not in it: a collection landing in one call made
            # p99 a measure of the collector (noisy, and a 2x slower review moved it ~1.5x).
            gc.collect()
            gc.disable()
            try:
                return timed(calls, passes, clock)
            finally:
                gc.enable()

        return one_leg

    legs_timed = {name: leg(calls) for name, calls in legs.items()}
    gc.collect()
    gc.freeze()  # what exists now (imports, the view) is not scanned again by each leg's collect
    try:
        alternate(legs_timed, rounds=1)
        return alternate(legs_timed, rounds=options.rounds)
    finally:
        gc.unfreeze()
