"""A real Prometheus (Debian's package) on loopback for the monitoring e2e test, and the checker
that asks it about the shipped alerts and dashboard: does each expression parse, does each of its
selectors match series, does a dashboard query return any."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from tests.monitoring.promql import vector_selectors
from tests.monitoring.shipped import Query
from tests.waiting import wait_for
from tooling.process import die_with_parent, free_port

SERIES_LOOKBACK_SECONDS = 600


@contextmanager
def running_prometheus(config: dict[str, Any], workdir: Path) -> Iterator[str]:
    """Prometheus with `config` (prometheus.yml as a dict), ready; yields its URL."""
    binary = shutil.which("prometheus") or "/usr/bin/prometheus"
    assert Path(binary).exists(), "prometheus missing: scripts/install-system-deps.sh installs it"
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log_path = workdir / "prometheus.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - started from the main thread
        )
    url = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"prometheus exited: {log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
                    return bool(response.status == 200)
            except OSError:
                return False

        wait_for(ready, timeout_seconds=60, message="prometheus ready")
        yield url
    finally:
        process.kill()
        process.wait(30)


def api(url: str, path: str, **params: str) -> dict[str, Any]:
    """GET an API path; the JSON answer, an error's included (status "error", "error")."""
    query = urllib.parse.urlencode(params)
    try:
        with urllib.request.urlopen(f"{url}{path}?{query}", timeout=10) as response:
            answer: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError as exc:  # 400 for a query that does not parse
        answer = json.loads(exc.read())
    return answer


def problems(url: str, queries: Sequence[Query], *, want_results: bool) -> list[str]:
    """What is wrong with `queries` on this Prometheus, one line each ([]: nothing): an error
    evaluating the expression (a parse error above all), a selector matching no series in the
    last 10 minutes, and with `want_results`, an instant query that returns nothing."""
    found = []
    start = str(time.time() - SERIES_LOOKBACK_SECONDS)
    for query in queries:
        answer = api(url, "/api/v1/query", query=query.expr)
        if answer["status"] != "success":
            found.append(f"{query.where}: {answer.get('error')} in {query.expr!r}")
            continue
        if want_results and not answer["data"]["result"]:
            found.append(f"{query.where}: no series for {query.expr!r}")
        for selector in vector_selectors(query.expr):
            series = api(url, "/api/v1/series", **{"match[]": selector, "start": start})
            if series["status"] != "success":
                found.append(f"{query.where}: selector {selector}: {series.get('error')}")
            elif not series["data"]:
                found.append(f"{query.where}: {selector} matches no series")
    return found


def rule_health(url: str) -> dict[str, tuple[str, str]]:
    """Each alerting rule Prometheus loaded: (health, last error)."""
    groups = api(url, "/api/v1/rules", type="alert")["data"]["groups"]
    return {
        rule["name"]: (rule["health"], rule.get("lastError", ""))
        for group in groups
        for rule in group["rules"]
    }


def firing(url: str) -> list[dict[str, str]]:
    """The labels of each alert firing now."""
    alerts = api(url, "/api/v1/alerts")["data"]["alerts"]
    return [dict(a["labels"]) for a in alerts if a["state"] == "firing"]
