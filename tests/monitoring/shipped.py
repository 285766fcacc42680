"""What ships for monitoring (charts/headroom/files/monitoring/), read for the tests: the alert
rules, the dashboard's queries with Grafana's variables filled in, the PromQL expressions of both,
and the metric names Headroom's components define in their source."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.monitoring.promql import metric_name, vector_selectors

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "headroom"
MONITORING = CHART / "files" / "monitoring"
ALERTS = MONITORING / "alerts.yaml"
ALERT_TESTS = MONITORING / "alerts.test.yaml"
DASHBOARD = MONITORING / "dashboard.json"
RUNBOOKS = ROOT / "docs" / "operations" / "alerts.md"
METRICS_MODULES = (
    ROOT / "nodeagent" / "metrics.py",
    ROOT / "extender" / "metrics.py",
    ROOT / "webhook" / "metrics.py",
)
# What Grafana puts in place of its variables when the dashboard runs with every node and
# namespace chosen: the test asks Prometheus the same.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "1h",
    "$node": ".*",
    "$namespace": ".*",
}
# Series Prometheus makes itself, not a component.
PROMETHEUS_SERIES = frozenset({"up"})
HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")


@dataclass(frozen=True)
class Query:
    where: str  # "alert HeadroomNvmlDown", "panel 'GPU health' A", "variable node"
    expr: str


def load_rules(path: Path = ALERTS) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def alerts(rules: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    rules = load_rules() if rules is None else rules
    return [rule for group in rules["groups"] for rule in group["rules"] if "alert" in rule]


def alert_queries(rules: dict[str, Any] | None = None) -> list[Query]:
    return [Query(f"alert {rule['alert']}", str(rule["expr"])) for rule in alerts(rules)]


def load_dashboard(path: Path = DASHBOARD) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, those inside collapsed rows too; rows themselves are left out."""
    found: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        if panel.get("type") == "row":
            found.extend(panel.get("panels") or [])
        else:
            found.append(panel)
    return found


def fill_variables(expr: str) -> str:
    for name, value in sorted(GRAFANA_VARIABLES.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(name, value)
    if "$" in re.sub(r'"[^"]*"', "", expr):  # `$1` in a label_replace string is not a variable
        raise ValueError(f"a Grafana variable the tests do not fill in: {expr}")
    return expr


LABEL_VALUES = re.compile(r"label_values\((?P<selector>.+),\s*(?P<label>[A-Za-z_]\w*)\)")


def dashboard_queries(dashboard: dict[str, Any] | None = None) -> list[Query]:
    """Each panel target's query, and each query variable's metric (as a selector)."""
    dashboard = load_dashboard() if dashboard is None else dashboard
    found = [
        Query(f"panel {panel['title']!r} {target['refId']}", fill_variables(target["expr"]))
        for panel in panels(dashboard)
        for target in panel.get("targets") or []
    ]
    for variable in dashboard["templating"]["list"]:
        if variable.get("type") != "query":
            continue
        match = LABEL_VALUES.fullmatch(variable["query"]["query"])
        if match is None:
            raise ValueError(f"variable {variable['name']}: expected label_values(metric, label)")
        found.append(Query(f"variable {variable['name']}", match["selector"]))
    return found


def metric_names(queries: list[Query]) -> set[str]:
    return {metric_name(s) for q in queries for s in vector_selectors(q.expr)} - {""}


def defined_in_source(name: str) -> bool:
    """Whether a metric of this exposed name is defined in a component's metrics module (the
    family name: without the _total a counter and the _bucket of a histogram get on the wire)."""
    source = "\n".join(path.read_text() for path in METRICS_MODULES)
    family = name
    for suffix in ("_total", *HISTOGRAM_SUFFIXES):
        family = family.removesuffix(suffix)
    return f'"{family}"' in source or f'"{name}"' in source
