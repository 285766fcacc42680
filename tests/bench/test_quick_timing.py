"""bench/quick_timing.py: legs alternate with the collector paused, and a measure is the ratio of
the legs' medians."""

from __future__ import annotations

import gc
import itertools

from bench.quick_timing import Options, compare, per_call, quantile, run_legs, twice


def test_per_call_sums_each_calls_percentile() -> None:
    # two calls timed in turn: call 0 took 1, 3, 2 ms; call 1 took 10, 30, 20 ms
    samples = [1.0, 10.0, 3.0, 30.0, 2.0, 20.0]
    assert per_call(0.5, 2)(samples) == 2.0 + 20.0


def test_compare_is_the_ratio_of_the_medians_over_the_legs() -> None:
    runs = {"ours": [[4.0], [6.0], [5.0]], "base": [[1.0], [3.0], [2.0]]}
    result = compare("m", runs, ours="ours", base="base", statistic=quantile(0.5), threshold=2.0)
    assert (result.value_ms, result.baseline_ms, result.ratio) == (5.0, 2.0, 2.5)
    assert (result.baseline_spread.low, result.baseline_spread.high) == (1.0, 3.0)
    assert not result.ok


def test_run_legs_alternates_with_the_collector_off_inside_a_leg() -> None:
    seen: list[tuple[str, bool]] = []
    ticks = itertools.count()
    options = Options(rounds=2, inject=frozenset(), clock=lambda: next(ticks) * 1_000_000)
    runs = run_legs(
        {
            "a": [lambda: seen.append(("a", gc.isenabled()))],
            "b": [lambda: seen.append(("b", gc.isenabled()))],
        },
        passes=1,
        options=options,
    )
    # one warm-up round (a b), then two rounds (a b, b a); every call 1 ms by this clock
    assert [leg for leg, _ in seen] == ["a", "b", "a", "b", "b", "a"]
    assert not any(enabled for _, enabled in seen)
    assert gc.isenabled()
    assert runs == {"a": [[1.0], [1.0]], "b": [[1.0], [1.0]]}


def test_twice_does_the_work_twice() -> None:
    calls: list[int] = []
    twice(lambda: calls.append(1))()
    assert calls == [1, 1]
