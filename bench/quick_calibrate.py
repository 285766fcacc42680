"""Calibration of quick mode's thresholds: `python -m bench.quick --calibrate N`.

Runs quick mode N times as is, then N/2 times (at least 3) with every group's 2x slowdown
injected, each run in a fresh process as the test runs it and with `--no-confirm` (the raw first
measurement). Per measure it prints the ratio's range in both and suggests a threshold: the
geometric mean of the highest normal ratio and the lowest a 2x regression must be caught at (twice
the normal median, or the lowest injected ratio if that is lower: a doubled review does not double
the p99 ratio, the baseline's tail being mostly the machine's), i.e. as far as a factor above the
noise as below the regression. A measure whose normal maximum reaches that bound cannot tell noise
from 2x with its statistic, and is flagged "too noisy".
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench.runinfo import table, versions_line


def bound(normal: Sequence[float], injected: Sequence[float]) -> float:
    """The lowest ratio a 2x regression must be caught at."""
    return min(2 * statistics.median(normal), *injected)


def suggest(normal: Sequence[float], injected: Sequence[float]) -> float | None:
    """The threshold between the noise seen and a 2x regression, or None if they overlap."""
    highest, lowest = max(normal), bound(normal, injected)
    if highest >= lowest:
        return None
    return round_up(math.sqrt(highest * lowest))


def round_up(value: float) -> float:
    """Two significant digits, up."""
    exponent = math.floor(math.log10(value)) - 1
    scale = 10.0**exponent
    return round(math.ceil(value / scale) * scale, max(0, -exponent))


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


def calibrate(runs: int, *, groups: Sequence[str], passthrough: Sequence[str] = ()) -> int:
    """`passthrough`: further options of every run (`--rounds`, `--clock`)."""
    from bench.quick import THRESHOLDS  # noqa: PLC0415 - quick imports this module lazily

    if runs < 3:
        raise SystemExit(f"--calibrate: expected at least 3 runs (got {runs})")
    print(versions_line())
    only = [f"--only={g}" for g in groups]
    normal = collect(runs, [*only, *passthrough], label="normal")
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
    print(f"\n{runs} runs of quick mode, then {max(3, runs // 2)} with the 2x slowdowns injected")
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
