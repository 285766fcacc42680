"""Reading the AIScaler's metrics: a Prometheus instant query, the Ready pods' own metrics
endpoints, and the GPU utilisation the node agents report.

The rules the decision relies on: a source that cannot be reached at all raises `SourceDown` (the
scaler then changes nothing); a query that answers nothing, or NaN, is missing (`None`), never
zero; a pod whose scrape fails or times out is left out, never counted as zero. Every request has
a timeout, and pod scrapes run with bounded concurrency.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from extender.scaler.spec import PodsSource
from headroom.report import NodeReport

MAX_SCRAPE_BYTES = 4 * 2**20


class SourceDown(Exception):
    """The metric source as a whole did not answer; the message says what happened."""


@dataclass(frozen=True)
class PodEndpoint:
    name: str
    ip: str


def query_prometheus(base_url: str, query: str, *, timeout_seconds: float = 5.0) -> float | None:
    """The value of an instant query (several series are summed); None when it has no value."""
    url = f"{base_url.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
    try:
        with urllib.request.urlopen(url, timeout=timeout_seconds) as response:  # noqa: S310
            answer = json.loads(response.read())
    except (OSError, ValueError) as exc:
        raise SourceDown(f"Prometheus at {base_url}: {exc}") from exc
    if not isinstance(answer, dict) or answer.get("status") != "success":
        raise SourceDown(f"Prometheus at {base_url} refused {query!r}: {answer}")
    data = answer.get("data") or {}
    if data.get("resultType") == "scalar":
        values = [_number(data.get("result"))]
    else:
        values = [
            _number(series.get("value"))
            for series in data.get("result") or []
            if isinstance(series, dict)
        ]
    present = [v for v in values if v is not None]
    return math.fsum(present) if present else None


def _number(sample: object) -> float | None:
    """A Prometheus `[time, "value"]` pair's value; None for NaN or anything unreadable."""
    if not isinstance(sample, list) or len(sample) != 2:
        return None
    try:
        value = float(sample[1])
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) or math.isinf(value) else value


def scrape_pods(
    pods: Sequence[PodEndpoint],
    *,
    source: PodsSource,
    timeout_seconds: float = 2.0,
    max_workers: int = 8,
) -> dict[str, float]:
    """The metric's value on each pod that answered (a failed scrape is absent)."""
    if not pods:
        return {}
    with ThreadPoolExecutor(max_workers=min(max_workers, len(pods))) as pool:
        values = pool.map(lambda pod: _scrape(pod, source, timeout_seconds), pods)
        return {
            pod.name: value for pod, value in zip(pods, values, strict=True) if value is not None
        }


def _scrape(pod: PodEndpoint, source: PodsSource, timeout_seconds: float) -> float | None:
    url = f"http://{pod.ip}:{source.port}{source.path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout_seconds) as response:
            text = response.read(MAX_SCRAPE_BYTES).decode("utf-8", "replace")
        return metric_value(text, source.metric_name)
    except (OSError, ValueError, urllib.error.URLError):
        return None


def metric_value(exposition: str, metric_name: str) -> float | None:
    """The sum of a metric's samples (all label sets) in Prometheus text format; None if absent.
    A counter may be named with or without its `_total` suffix."""
    samples = [
        sample for family in text_string_to_metric_families(exposition) for sample in family.samples
    ]
    for name in (metric_name, f"{metric_name}_total"):
        present = [s.value for s in samples if s.name == name and not math.isnan(s.value)]
        if present:
            return math.fsum(present)
    return None


def gpu_utilization(pod_uids: Mapping[str, str], reports: Iterable[NodeReport]) -> dict[str, float]:
    """Per pod name, the mean utilisation (percent) of the GPUs it is seen on, from the agents'
    reports; pods not seen, or on GPUs that report no utilisation, are absent."""
    by_uid: dict[str, list[float]] = {}
    wanted = set(pod_uids.values())
    for report in reports:
        for gpu in report.gpus:
            if gpu.utilization_percent is None or not gpu.healthy:
                continue
            for pod in gpu.pods:
                if pod.uid in wanted:
                    by_uid.setdefault(pod.uid, []).append(gpu.utilization_percent)
    return {
        name: math.fsum(by_uid[uid]) / len(by_uid[uid])
        for name, uid in pod_uids.items()
        if by_uid.get(uid)
    }
