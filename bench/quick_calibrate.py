"""Calibration of quick mode's thresholds: `python -m bench.quick --calibrate N`.

Quick mode's ratios are CPU time against CPU time, yet they move with what else runs: the review's
Python code loses more to other processes evicting the caches than `json`'s C loop does (the review
p50 ratio read 8.2-9.0 on a quiet machine, 10.6-11.4 while other helpers' tests ran, and 11.0-11.3
beside three cache-thrashing loops). So the calibration runs quick mode N times as is, N times
beside one cache-thrashing process per CPU (the busy end of the noise), and N/2 times (at least 3)
as is with every group's 2x slowdown injected (the quiet end of a regression); each run in a fresh
process as the test runs it, with `--no-confirm` (the raw first measurement).

Per measure it prints the ranges and suggests a threshold: the geometric mean of the highest
normal ratio and the lowest a 2x regression must be caught at (twice the lowest normal ratio, or
the lowest injected ratio if that is lower: a doubled review does not double the p99 ratio, the
baseline's tail being mostly the machine's), i.e. as far as a factor above the noise as below the
regression. A measure whose highest normal ratio reaches that bound cannot tell noise from 2x with
its statistic, and is flagged "too noisy".
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from bench.runinfo import table, versions_line


def bound(normal: Sequence[float], injected: Sequence[float]) -> float:
    """The lowest ratio a 2x regression must be caught at."""
    return min(2 * min(normal), *injected)


def suggest(normal: Sequence[float], injected: Sequence[float]) -> float | None:
    """The threshold between the noise seen and a 2x regression, or None if they overlap."""
    highest, lowest = max(normal), bound(normal, injected)
    if highest >= lowest:
        return None
    return two_digits(math.sqrt(highest * lowest))


def two_digits(value: float) -> float:
    """`value` to two significant digits."""
    return float(f"{value:.2g}")


def one_run(argv: Sequence[str], out: Path) -> dict[str, float]:
    command = [sys.executable, "-m", "bench.quick", "--no-confirm", "--json", str(out), *argv]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
    if done.returncode not in (0, 1) or not out.exists():
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr}")
    ratios: dict[str, float] = json.loads(out.read_text())["ratios"]
    return ratios


def collect(runs: int, argv: Sequence[str], *, label: str) -> dict[str, list[float]]:
    """{measure: its ratio in each of `runs` runs of quick mode with `argv`}."""
    seen: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-quick-calibrate-") as tmp:
        for i in range(runs):
            ratios = one_run(argv, Path(tmp) / f"run-{i}.json")
            print(
                f"{label} {i + 1}/{runs}: " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items())
            )
            for measure, ratio in ratios.items():
                seen.setdefault(measure, []).append(ratio)
    return seen


# Touches one byte a page of 64 MiB, over and over: every pass evicts the caches and the TLB.
THRASH = """
buf = bytearray(64 << 20)
while True:
    for i in range(0, len(buf), 4096):
        buf[i] ^= 1
"""


@contextlib.contextmanager
def contention() -> Iterator[None]:
    """One cache-thrashing process per CPU while the block runs."""
    thrashers = [
        subprocess.Popen([sys.executable, "-c", THRASH]) for _ in range(os.cpu_count() or 1)
    ]
    try:
        yield
    finally:
        for thrasher in thrashers:
            thrasher.terminate()
        for thrasher in thrashers:
            thrasher.wait(timeout=30)


def calibrate(runs: int, *, groups: Sequence[str], passthrough: Sequence[str] = ()) -> int:
    """`passthrough`: further options of every run (`--rounds`, `--clock`)."""
    from bench.quick import THRESHOLDS  # noqa: PLC0415 - quick imports this module lazily

    if runs < 3:
        raise SystemExit(f"--calibrate: expected at least 3 runs (got {runs})")
    print(versions_line())
    only = [f"--only={g}" for g in groups]
    normal = collect(runs, [*only, *passthrough], label="normal")
    with contention():
        contended = collect(runs, [*only, *passthrough], label="normal, caches contended")
    for measure, values in contended.items():
        normal[measure] += values
    injected = collect(
        max(3, runs // 2),
        [*only, *passthrough, *(f"--inject-slowdown={g}" for g in groups)],
        label="2x injected",
    )
    rows = []
    for measure, values in normal.items():
        doubled, current = injected[measure], THRESHOLDS[measure]
        suggested = suggest(values, doubled)
        rows.append(
            [
                measure,
                f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f}",
                f"{min(doubled):.2f} / {statistics.median(doubled):.2f}",
                f"{bound(values, doubled):.2f}",
                "too noisy" if suggested is None else f"{suggested:g}",
                f"{current:g}",
                f"{sum(r > current for r in values)}/{len(values)}",
                f"{sum(r <= current for r in doubled)}/{len(doubled)}",
            ]
        )
    print(
        f"\n{runs} runs of quick mode as is and {runs} beside cache-thrashing processes "
        f"('normal'), then {max(3, runs // 2)} as is with the 2x slowdowns injected"
    )
    header = [
        "measure",
        "normal min / median / max",
        "2x min / median",
        "catch from",
        "suggested",
        "current",
        "normal over it",
        "2x not over it",
    ]
    print(table(header, rows))
    return 0
