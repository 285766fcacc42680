"""Calibration of quick mode's thresholds: `python -m bench.quick --calibrate N`.

Runs quick mode N times, each in a fresh process as the test runs it (`--no-confirm`: the raw
first measurement), and prints per measure the ratio's range over the runs and a suggested
threshold: the geometric mean of the highest ratio seen and twice the median, i.e. as far (as a
factor) above the noise as below a 2x regression. A measure whose highest ratio reaches twice its
median cannot tell noise from 2x with this statistic; it is flagged "too noisy".
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


def suggest(ratios: Sequence[float]) -> float | None:
    """The threshold between the noise seen and a 2x regression, or None if they overlap."""
    highest, doubled = max(ratios), 2 * statistics.median(ratios)
    if highest >= doubled:
        return None
    return round_up(math.sqrt(highest * doubled))


def round_up(value: float) -> float:
    """Two significant digits, up."""
    exponent = math.floor(math.log10(value)) - 1
    scale = 10.0**exponent
    return round(math.ceil(value / scale) * scale, max(0, -exponent))


def one_run(
    passthrough: Sequence[str], groups: Sequence[str], inject: Sequence[str], out: Path
) -> dict[str, float]:
    argv = [sys.executable, "-m", "bench.quick", "--no-confirm", "--json", str(out), *passthrough]
    argv += [f"--only={g}" for g in groups] + [f"--inject-slowdown={g}" for g in inject]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=600)
    if done.returncode not in (0, 1) or not out.exists():
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr}")
    ratios: dict[str, float] = json.loads(out.read_text())["ratios"]
    return ratios


def calibrate(
    runs: int, *, groups: Sequence[str], inject: Sequence[str], passthrough: Sequence[str] = ()
) -> int:
    """`passthrough`: further options of every run (`--rounds`, `--clock`)."""
    from bench.quick import THRESHOLDS  # noqa: PLC0415 - quick imports this module lazily

    if runs < 3:
        raise SystemExit(f"--calibrate: expected at least 3 runs (got {runs})")
    print(versions_line())
    seen: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-quick-calibrate-") as tmp:
        for i in range(runs):
            ratios = one_run(passthrough, groups, inject, Path(tmp) / f"run-{i}.json")
            print(f"run {i + 1}/{runs}: " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()))
            for measure, ratio in ratios.items():
                seen.setdefault(measure, []).append(ratio)
    rows = []
    for measure, values in seen.items():
        suggested = suggest(values)
        rows.append(
            [
                measure,
                f"{min(values):.2f}",
                f"{statistics.median(values):.2f}",
                f"{max(values):.2f}",
                f"{2 * statistics.median(values):.2f}",
                "too noisy" if suggested is None else f"{suggested:g}",
                f"{THRESHOLDS[measure]:g}",
                f"{sum(r > THRESHOLDS[measure] for r in values)}/{len(values)}",
            ]
        )
    print(f"\n{runs} runs of quick mode; injected 2x: {', '.join(inject) or 'none'}")
    header = ["measure", "min", "median", "max", "2x median", "suggested", "current", "over it"]
    print(table(header, rows))
    return 0
