"""What every benchmark prints beside its table, so that a change can be told from noise.

- `versions_line()`: the Python, the machine and the versions of the libraries a run used (a number
  measured with jsonpatch 1.33 says nothing about jsonpatch 1.48).
- `alternate(legs, rounds=N)`: A/B legs run in turn within one run (A B, B A, A B, ...), so a busy
  moment of a shared machine falls on every leg alike instead of on whichever ran then.
- `Spread`: a baseline's median with its range over the legs, so the reader sees how far the
  baseline itself moved in this run before reading a ratio against it.
- `percentile`: the nearest-rank percentile every table uses.
- `table`: the Markdown table every bench prints (columns padded, so it reads in a terminal too).
"""

from __future__ import annotations

import os
import platform
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import TypeVar

T = TypeVar("T")

# The distributions the hot paths run on; a bench names more with `versions_line(extra=...)`.
LIBRARIES = (
    "flask",
    "werkzeug",
    "gunicorn",
    "jsonpatch",
    "orjson",
    "kubernetes",
    "prometheus-client",
    "nvidia-ml-py",
    "cryptography",
    "pyyaml",
)


def library_versions(names: Iterable[str] = LIBRARIES) -> dict[str, str]:
    """{distribution: version}, "absent" for one that is not installed."""
    found: dict[str, str] = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


def versions_line(*, extra: Mapping[str, str] | None = None) -> str:
    """One line: Python, machine, CPUs, load, the libraries, then `extra` (say, Kubernetes)."""
    parts = [
        f"Python {platform.python_version()}",
        f"{platform.system()} {platform.machine()}",
        f"{os.cpu_count()} CPUs (load {os.getloadavg()[0]:.2f})",
    ]
    parts += [f"{name} {version}" for name, version in library_versions().items()]
    parts += [f"{name} {version}" for name, version in (extra or {}).items()]
    return "versions: " + ", ".join(parts)


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank `q` percentile (0 < q <= 1) of a non-empty sequence."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.5) - 1))]


@dataclass(frozen=True)
class Spread:
    """A measure taken once per leg: its median and range over the legs."""

    median: float
    low: float
    high: float
    legs: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        if not values:
            raise ValueError("spread of no values")
        return cls(statistics.median(values), min(values), max(values), len(values))

    @property
    def relative(self) -> float:
        """(high - low) / median: 0.1 means the legs differed by 10 % of the median."""
        return (self.high - self.low) / self.median if self.median else 0.0

    def describe(self, unit: str = "", digits: int = 2, *, over: str = "legs") -> str:
        """ "0.80 ms (0.76-0.91 over 5 legs, spread 19 %)"; `over` names what was counted
        ("seeds", "parts")."""
        value = f"{self.median:.{digits}f}{unit}"
        if self.legs < 2:
            return f"{value} (1 {over.removesuffix('s')})"
        return (
            f"{value} ({self.low:.{digits}f}-{self.high:.{digits}f} over {self.legs} {over}, "
            f"spread {self.relative:.0%})"
        )


def alternate(legs: Mapping[str, Callable[[], T]], *, rounds: int) -> dict[str, list[T]]:
    """Run every leg `rounds` times, in turn, reversing the order every other round (A B, B A, ...)
    so that neither leg always runs first; {leg: its results, in run order}."""
    if rounds < 1:
        raise ValueError(f"rounds: expected at least 1 (got {rounds})")
    results: dict[str, list[T]] = {name: [] for name in legs}
    order = list(legs)
    for i in range(rounds):
        for name in order if i % 2 == 0 else reversed(order):
            results[name].append(legs[name]())
    return results


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A Markdown table, each column as wide as its widest cell."""
    lines = [list(header), *(list(row) for row in rows)]
    if any(len(line) != len(header) for line in lines):
        raise ValueError(f"table: every row needs {len(header)} cells, as the header has")
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]

    def render(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([render(lines[0]), rule, *(render(line) for line in lines[1:])])
