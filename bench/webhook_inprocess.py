"""Part (a) of bench/webhook.py: the review in process, against a baseline in the same run.

Over the corpus pods, p50/p99 per call of `review()` (parse, decide, mutate, JSONPatch, encode);
baseline: `json.loads` + `json.dumps` of the same bodies, the least any review must do. Target:
review p99 at most 3x the baseline's p99. Beside them, `mutate()` alone, and the review as it was
before it recorded its patch (`mutate`, then `jsonpatch.make_patch` over `changed_parts`: the
"former" leg), so the gain shows in the same run. The legs alternate (`bench.runinfo.alternate`)
`LEG_PASSES` passes over the corpus at a time; the baseline's spread over its legs is printed.

Also the table's row type and verdict, which the other parts use.
"""

from __future__ import annotations

import contextlib
import functools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from unittest import mock

import webhook.review
from bench.runinfo import Spread, alternate, percentile
from headroom import names
from headroom.demand import GpuDemand
from tests.webhook.helpers import corpus, encode, old_patch, review_body, shipped_profiles
from webhook.mutate import Mutation, mutate
from webhook.profiles import Profile
from webhook.review import review

Row = tuple[str, str, str, str, str]  # measure, Headroom, baseline, ratio, target
TARGET_P99_RATIO = 3.0  # review p99 at most this many times the baseline's p99


def verdict(ok: bool, target: str) -> str:
    return f"{target} {'met' if ok else 'MISSED'}"


LEG_PASSES = 10  # passes over the corpus in one leg of (a); legs alternate (bench.runinfo)
Samples = tuple[list[float], list[float]]  # one run of a leg: wall ms, CPU ms, call by call


@dataclass(frozen=True)
class InProcess:
    """The samples (ms) of each leg of (a), one list per run of the leg, in run order: "review",
    "baseline", "former" (review with the former make_patch diff) and "mutate"; by the wall
    clock (`wall`) and by the thread's CPU time (`cpu`), which a preemption does not inflate."""

    wall: dict[str, list[list[float]]]
    cpu: dict[str, list[list[float]]]

    def pooled(self, leg: str, *, clock: str = "wall") -> list[float]:
        runs = self.wall[leg] if clock == "wall" else self.cpu[leg]
        return [sample for run in runs for sample in run]

    def p(self, leg: str, q: float, *, clock: str = "wall") -> float:
        return percentile(self.pooled(leg, clock=clock), q)

    def spread(self, leg: str, q: float) -> Spread:
        """The `q` percentile (wall clock) of each run of `leg`: how far it moved in this run."""
        return Spread.of([percentile(run, q) for run in self.wall[leg]])

    def stalled(self, leg: str, *, over_ms: float = 0.5) -> float:
        """The share of `leg`'s calls whose wall time exceeds their CPU time by `over_ms`: the
        calls the scheduler preempted (or that waited on something)."""
        wall, cpu = self.pooled(leg), self.pooled(leg, clock="cpu")
        return sum(w - c > over_ms for w, c in zip(wall, cpu, strict=True)) / len(wall)


def measure_in_process(rounds: int) -> InProcess:
    """`rounds` passes over the corpus for each leg, the legs taking turns `LEG_PASSES` passes
    at a time, so a busy moment of the machine falls on every leg alike."""
    profiles = shipped_profiles()
    pods = list(corpus().values())
    bodies = [encode(review_body(pod)) for pod in pods]
    # mutate() alone: the pure function, on pods already decoded, with their demand known.
    mutates: list[Callable[[], object]] = [
        functools.partial(
            mutate, pod, profiles.profiles[_profile_name(pod)], demand=demand, version="0.1.0"
        )
        for pod in pods
        if (demand := GpuDemand.from_pod(pod)) is not None
    ]
    reviews: list[Callable[[], object]] = [
        functools.partial(review, body, profiles, version="0.1.0") for body in bodies
    ]
    calls: dict[str, list[Callable[[], object]]] = {
        "review": reviews,
        "baseline": [functools.partial(_json_round_trip, body) for body in bodies],
        "former": reviews,  # run under `_former_diff`
        "mutate": mutates,
    }
    passes = min(rounds, LEG_PASSES)

    def leg(name: str, calls: list[Callable[[], object]]) -> Callable[[], Samples]:
        def run() -> Samples:
            with _former_diff() if name == "former" else contextlib.nullcontext():
                return _timed(calls, passes)

        return run

    legs = {name: leg(name, each) for name, each in calls.items()}
    for run in legs.values():  # warm up
        run()
    runs = alternate(legs, rounds=max(1, rounds // passes))
    return InProcess(
        wall={name: [wall for wall, _ in each] for name, each in runs.items()},
        cpu={name: [cpu for _, cpu in each] for name, each in runs.items()},
    )


def in_process(rounds: int) -> dict[str, float]:
    """(a)'s figures in ms: review p50/p99, the baseline's (`base_`), the former diff's
    (`former_`) and mutate()'s (`mutate_`), by the wall clock; `cpu_p50`, `cpu_p99`,
    `cpu_base_p50`, `cpu_base_p99` the same by CPU time."""
    measured = measure_in_process(rounds)
    prefixes = {"review": "", "baseline": "base_", "former": "former_", "mutate": "mutate_"}
    figures = {
        f"{prefix}{name}": measured.p(leg, q)
        for leg, prefix in prefixes.items()
        for name, q in (("p50", 0.5), ("p99", 0.99))
    }
    for leg, prefix in (("review", "cpu_"), ("baseline", "cpu_base_")):
        for name, q in (("p50", 0.5), ("p99", 0.99)):
            figures[f"{prefix}{name}"] = measured.p(leg, q, clock="cpu")
    return figures


def _timed(calls: list[Callable[[], object]], passes: int) -> Samples:
    """(wall ms, CPU ms) of each call; the CPU clock read outside the wall clock, so the wall
    samples do not carry its cost (a system call, about 1 us)."""
    wall: list[float] = []
    cpu: list[float] = []
    for _ in range(passes):
        for call in calls:
            cpu_started = time.thread_time_ns()
            started = time.perf_counter_ns()
            call()
            wall.append((time.perf_counter_ns() - started) / 1e6)
            cpu.append((time.thread_time_ns() - cpu_started) / 1e6)
    return wall, cpu


def _profile_name(pod: dict[str, Any]) -> str:
    return str(pod["metadata"]["annotations"].get(names.PROFILE_ANNOTATION, names.DEFAULT_PROFILE))


def _former_mutate_with_patch(
    pod: dict[str, Any], profile: Profile, *, demand: GpuDemand, version: str
) -> Mutation:
    """What the review did before it recorded its patch: mutate, then diff (make_patch)."""
    mutated = mutate(pod, profile, demand=demand, version=version)
    return Mutation(mutated, old_patch(pod, mutated))


def _former_diff() -> contextlib.AbstractContextManager[object]:
    """Within it, `review` answers with the former diff instead of the recorded patch."""
    return mock.patch.object(webhook.review, "mutate_with_patch", _former_mutate_with_patch)


def _json_round_trip(body: bytes) -> str:
    return json.dumps(json.loads(body))


def spread_lines(a: InProcess) -> list[str]:
    """How far the baseline moved between its legs, and how many calls were preempted, to read
    the ratios by."""
    lines = [
        f"(a) baseline p{q * 100:.0f} per leg: {a.spread('baseline', q).describe(' ms', 3)}"
        for q in (0.5, 0.99)
    ]
    stalls = ", ".join(f"{leg} {a.stalled(leg):.1%}" for leg in ("review", "baseline", "former"))
    return [*lines, f"(a) calls stalled (wall - CPU > 0.5 ms; preempted): {stalls}"]


def rows_a(a: InProcess) -> list[Row]:
    rows: list[Row] = [
        (
            "(a) mutate() alone, p50 / p99",
            f"{a.p('mutate', 0.5):.3f} / {a.p('mutate', 0.99):.3f} ms",
            "-",
            "-",
            "-",
        )
    ]
    for leg, clock, label in (
        ("review", "wall", "review in process"),
        ("review", "cpu", "review in process, CPU time"),
        ("former", "wall", "former review (make_patch diff)"),
    ):
        for q in (0.5, 0.99):
            value, base = a.p(leg, q, clock=clock), a.p("baseline", q, clock=clock)
            if leg == "former":
                target = f"now x{value / a.p('review', q):.1f} faster"
            elif q > 0.5:
                target = verdict(value <= TARGET_P99_RATIO * base, f"<= x{TARGET_P99_RATIO:.0f}")
            else:
                target = "-"
            name = f"(a) {label}, p{q * 100:.0f}"
            rows.append((name, f"{value:.3f} ms", f"{base:.3f} ms", f"x{value / base:.1f}", target))
    return rows
