"""The shipped Grafana dashboard: current enough for Grafana 10 and 11, its Prometheus chosen by a
`datasource` variable (no UID of anyone's data source inside), panels laid out without overlap,
and every query reading metrics Headroom's components define."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tests.monitoring.promql import vector_selectors
from tests.monitoring.shipped import (
    PROMETHEUS_SERIES,
    dashboard_queries,
    defined_in_source,
    load_dashboard,
    metric_names,
    panels,
)

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
GRID_COLUMNS = 24


def walk(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield f"{path}.{key}", item
            yield from walk(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from walk(item, f"{path}[{index}]")


def test_schema_is_grafana_10_or_later() -> None:
    dashboard = load_dashboard()
    assert 38 <= dashboard["schemaVersion"] <= 41  # 38: Grafana 10.0; 39-41: 10.4 to 11.x
    assert dashboard["uid"] == "headroom-overview"
    assert "id" not in dashboard  # an instance's own number: Grafana gives one on import


def test_the_data_source_is_a_variable_and_no_uid_is_fixed() -> None:
    dashboard = load_dashboard()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in panels(dashboard):
        assert panel["datasource"] == DATASOURCE, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
    for name in ("node", "namespace"):
        assert variables[name]["datasource"] == DATASOURCE
    uids = {value for path, value in walk(dashboard) if path.endswith(".uid")}
    assert uids == {"headroom-overview", "${datasource}", "-- Grafana --"}


def test_panels_have_unique_ids_and_do_not_overlap() -> None:
    dashboard = load_dashboard()
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    taken: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= GRID_COLUMNS, panel["title"]
        cells = {
            (grid["x"] + dx, grid["y"] + dy) for dx in range(grid["w"]) for dy in range(grid["h"])
        }
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells


def test_each_panel_asks_at_least_one_query_with_distinct_refids() -> None:
    for panel in panels(load_dashboard()):
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
        assert all(t["expr"].strip() for t in panel["targets"]), panel["title"]


def test_what_the_issue_asks_for_is_on_it() -> None:
    names = metric_names(dashboard_queries())
    for wanted in (
        "headroom_gpu_memory_free_bytes",
        "headroom_gpu_healthy",
        "headroom_scaler_desired_replicas",
        "headroom_scaler_feasible_replicas",
        "headroom_scaler_applied_replicas",
        "headroom_scaler_cold_start_p50_seconds",
        "headroom_scaler_cold_start_p90_seconds",
        "headroom_extender_verb_seconds_bucket",
        "headroom_webhook_request_duration_seconds_bucket",
        "headroom_extender_reservations",
    ):
        assert wanted in names, wanted
    latency = [q.expr for q in dashboard_queries() if "_bucket" in q.expr]
    assert latency and all(q.startswith("histogram_quantile(") for q in latency)


def test_every_metric_the_dashboard_reads_is_defined_by_a_component() -> None:
    queries = dashboard_queries()
    assert all(vector_selectors(q.expr) for q in queries)
    missing = {
        name for name in metric_names(queries) - PROMETHEUS_SERIES if not defined_in_source(name)
    }
    assert missing == set()
