"""Quick mode (bench/quick.py) as the suite runs it: every ratio within its threshold, and a 2x
regression injected into each group's timed call reported as REGRESSED.

Each run is a fresh `python -m bench.quick` process, as a developer runs it: the timing loops see
no state the suite's other tests left behind. Marked `server` for its 180 s timeout: a run takes
about 12 s on a quiet 2-core machine and up to a minute on a busy one (a regressed group is
measured twice).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.quick import GROUPS, THRESHOLDS

pytestmark = pytest.mark.server

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_SECONDS = 170


def run_quick(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], Any]:
    """The finished run and the report it wrote with --json."""
    report = tmp_path / "quick.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    done = subprocess.run(
        [sys.executable, "-m", "bench.quick", "--json", str(report), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=RUN_TIMEOUT_SECONDS,
    )
    assert report.exists(), f"no report (exit {done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done, json.loads(report.read_text())


def test_every_ratio_is_within_its_threshold(tmp_path: Path) -> None:
    done, report = run_quick(tmp_path)
    table = done.stdout
    assert set(report["ratios"]) == set(THRESHOLDS), table
    over = {
        r["measure"]: f"{r['ratio']:.2f} > {r['threshold']:g}"
        for r in report["results"]
        if r["ratio"] > r["threshold"]
    }
    assert not over, f"over the threshold: {over}\n{table}"
    assert report["regressed"] == [], table
    assert done.returncode == 0, f"{table}\n{done.stderr}"
    assert report["versions"].startswith("versions: Python "), report["versions"]


@pytest.mark.parametrize("group", GROUPS)
def test_a_2x_regression_is_reported(tmp_path: Path, group: str) -> None:
    done, report = run_quick(tmp_path, "--only", group, "--inject-slowdown", group)
    table = done.stdout
    measures = {r["measure"] for r in report["results"]}
    assert measures, table
    assert all(m.startswith(f"{group} ") for m in measures), table
    assert sorted(report["regressed"]) == sorted(measures), table
    assert done.returncode == 1, f"{table}\n{done.stderr}"
    assert table.count("REGRESSED") == len(measures), table
