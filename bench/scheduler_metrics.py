"""What a batch added to a component's Prometheus histograms and to its processes' CPU time.

bench/scheduler.py reads kube-scheduler's and the extender's /metrics before and after each batch:
`parse` turns a page into samples, `histogram` subtracts two scrapes of one histogram (summing the
series whose labels it does not pin, such as `status`), and a `Histogram` answers its mean and
its quantiles as Prometheus' histogram_quantile does (linear within the bucket). `cpu_seconds`
reads a process's CPU time from /proc, with its children's when asked (gunicorn's worker).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """{(sample name, its labels): value} for every sample on a /metrics page."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


@dataclass(frozen=True)
class Histogram:
    """Observations between two scrapes: their count, sum and cumulative buckets."""

    count: float
    sum_seconds: float
    buckets: tuple[tuple[float, float], ...]  # (upper bound in seconds, cumulative count), sorted

    @property
    def mean_ms(self) -> float:
        return 1000 * self.sum_seconds / self.count if self.count else float("nan")

    def quantile_ms(self, q: float) -> float:
        """The `q` quantile, interpolated within its bucket; the largest finite bound when it
        falls in the +Inf bucket; NaN without observations."""
        if not self.count or not self.buckets:
            return float("nan")
        rank = q * self.count
        lower_bound, lower_count = 0.0, 0.0
        for bound, cumulative in self.buckets:
            if cumulative >= rank:
                if bound == float("inf"):
                    return 1000 * lower_bound
                inside = cumulative - lower_count
                share = (rank - lower_count) / inside if inside else 1.0
                return 1000 * (lower_bound + (bound - lower_bound) * share)
            lower_bound, lower_count = bound, cumulative
        return 1000 * lower_bound


def histogram(before: Samples, after: Samples, name: str, **labels: str) -> Histogram:
    """What `after` added to histogram `name` since `before`, over every series whose labels
    include `labels`."""
    wanted = set(labels.items())

    def added(sample: str, key: frozenset[tuple[str, str]]) -> float:
        return after[(sample, key)] - before.get((sample, key), 0.0)

    count = total = 0.0
    buckets: dict[float, float] = {}
    for sample, key in after:
        if not wanted <= key:
            continue
        if sample == f"{name}_count":
            count += added(sample, key)
        elif sample == f"{name}_sum":
            total += added(sample, key)
        elif sample == f"{name}_bucket":
            bound = float(dict(key)["le"])
            buckets[bound] = buckets.get(bound, 0.0) + added(sample, key)
    return Histogram(count=count, sum_seconds=total, buckets=tuple(sorted(buckets.items())))


def counter(before: Samples, after: Samples, name: str, **labels: str) -> float:
    """What `after` added to counter `name` (its `_total` sample) over the matching series."""
    wanted = set(labels.items())
    return sum(
        value - before.get((sample, key), 0.0)
        for (sample, key), value in after.items()
        if sample in (name, f"{name}_total") and wanted <= key
    )


_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, *, children: bool = False) -> float:
    """User + system CPU seconds of process `pid` so far, plus its live children's when asked;
    0 for a process that is gone."""
    total = _own_cpu_seconds(pid)
    if children:
        for child in _children(pid):
            total += _own_cpu_seconds(child)
    return total


def _own_cpu_seconds(pid: int) -> float:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # The command name (field 2) may hold spaces; the fields after its ")" are fixed.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS_PER_SECOND  # utime, stime


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found
