"""The chart's monitoring parts (templates/monitoring/, files/monitoring/, values.yaml
`monitoring:`), rendered by a real `helm template` of the chart: the monitors scrape the pods the
shipped workloads select, on their ports, under the job labels the alerts use; the PrometheusRule
is alerts.yaml; the dashboard ConfigMap carries dashboard.json for Grafana's sidecar; everything
is off unless asked for."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.monitoring.shipped import CHART, DASHBOARD, load_rules
from tooling.helm import helm_binary

ROOT = CHART.parents[1]
NAMESPACE = "headroom-system"
JOBS = {"headroom-nodeagent", "headroom-extender", "headroom-webhook"}


@pytest.fixture(scope="module")
def chart() -> Path:
    """The chart itself: the monitoring objects are picked from its output by their template."""
    return CHART


def render(chart: Path, *settings: str) -> list[dict[str, Any]]:
    """The objects templates/monitoring/ renders (helm's `# Source:` line says which template
    made each document)."""
    result = template(chart, settings)
    assert result.returncode == 0, result.stderr
    documents = result.stdout.split("\n---\n")
    source = "# Source: headroom/templates/monitoring/"
    return [yaml.safe_load(d) for d in documents if source in d and yaml.safe_load(d)]


def template(chart: Path, settings: Sequence[str]) -> subprocess.CompletedProcess[str]:
    args = [str(helm_binary()), "template", "headroom", str(chart), "--namespace", NAMESPACE]
    for setting in settings:
        args += ["--set", setting]
    return subprocess.run(args, capture_output=True, text=True, check=False, timeout=120)


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def workload_selectors() -> dict[str, dict[str, str]]:
    """The pod selectors of the shipped DaemonSet and Deployments, by the job that scrapes them."""
    found = {}
    for job, path in (
        ("headroom-nodeagent", "manifests/nodeagent/daemonset.yaml"),
        ("headroom-extender", "manifests/extender/deployment.yaml"),
        ("headroom-webhook", "manifests/webhook/deployment.yaml"),
    ):
        workload = yaml.safe_load((ROOT / path).read_text())
        found[job] = workload["spec"]["selector"]["matchLabels"]
    return found


def container_ports(path: str) -> set[str]:
    workload = yaml.safe_load((ROOT / path).read_text())
    containers = workload["spec"]["template"]["spec"]["containers"]
    return {p["name"] for c in containers for p in c.get("ports") or []}


def alert_jobs() -> set[str]:
    rules = load_rules()
    exprs = " ".join(r["expr"] for g in rules["groups"] for r in g["rules"])
    found = re.search(r'up\{job=~"([^"]+)"\}', exprs)
    assert found is not None
    return set(found.group(1).split("|"))


def test_nothing_renders_by_default(chart: Path) -> None:
    assert render(chart) == []


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("monitoring.podMonitors.enabled=yes", "at '/monitoring/podMonitors/enabled': got string"),
        ("monitoring.podMonitor.enabled=true", "additional properties 'podMonitor' not allowed"),
        (
            "monitoring.prometheusRule.runbookBaseUrl=example.com",
            "at '/monitoring/prometheusRule/runbookBaseUrl'",
        ),
        ("monitoring.podMonitors.interval=soon", "at '/monitoring/podMonitors/interval'"),
        ("monitoring.extender.port=0", "at '/monitoring/extender/port'"),
    ],
)
def test_bad_monitoring_values_are_refused_naming_the_field(
    chart: Path, setting: str, message: str
) -> None:
    """By the chart's values.schema.json."""
    result = template(chart, [setting])
    assert result.returncode != 0
    assert message in result.stderr


def test_pod_monitors_scrape_the_shipped_pods_under_the_alerts_job_labels(chart: Path) -> None:
    monitors = by_kind(render(chart, "monitoring.podMonitors.enabled=true"), "PodMonitor")
    assert set(monitors) == JOBS == alert_jobs()
    selectors = workload_selectors()
    for name, monitor in monitors.items():
        spec = monitor["spec"]
        assert spec["selector"]["matchLabels"] == selectors[name]
        assert spec["namespaceSelector"] == {"matchNames": [NAMESPACE]}
        (endpoint,) = spec["podMetricsEndpoints"]
        assert endpoint["relabelings"] == [
            {"action": "replace", "targetLabel": "job", "replacement": name}
        ]
        assert endpoint["path"] == "/metrics"
    # The ports are the shipped containers' (the extender's `metrics` port comes with the chart's
    # --metrics-bind; the manifests of today do not serve it).
    assert monitors["headroom-nodeagent"]["spec"]["podMetricsEndpoints"][0]["port"] in (
        container_ports("manifests/nodeagent/daemonset.yaml")
    )
    webhook = monitors["headroom-webhook"]["spec"]["podMetricsEndpoints"][0]
    assert webhook["port"] in container_ports("manifests/webhook/deployment.yaml")
    assert webhook["scheme"] == "https"
    assert webhook["tlsConfig"] == {
        "serverName": f"headroom-webhook.{NAMESPACE}.svc",
        "ca": {"secret": {"name": "headroom-webhook-tls", "key": "ca.crt"}},
    }
    # The AIScaler series' own `namespace` label must survive the target's.
    extender = monitors["headroom-extender"]["spec"]["podMetricsEndpoints"][0]
    assert (extender["honorLabels"], extender["port"]) == (True, "metrics")


def test_a_disabled_component_gets_no_monitor_and_labels_reach_every_object(chart: Path) -> None:
    objects = render(
        chart,
        "monitoring.podMonitors.enabled=true",
        "webhook.enabled=false",
        "monitoring.labels.release=kube-prometheus-stack",
        "monitoring.webhook.tlsConfig.insecureSkipVerify=true",
    )
    assert set(by_kind(objects, "PodMonitor")) == {"headroom-nodeagent", "headroom-extender"}
    assert all(o["metadata"]["labels"]["release"] == "kube-prometheus-stack" for o in objects)


def test_service_monitors_come_with_a_headless_service_per_component(chart: Path) -> None:
    objects = render(chart, "monitoring.serviceMonitors.enabled=true")
    services, monitors = by_kind(objects, "Service"), by_kind(objects, "ServiceMonitor")
    assert set(monitors) == JOBS
    selectors = workload_selectors()
    for name, monitor in monitors.items():
        service = services[f"{name}-metrics"]
        assert service["spec"]["clusterIP"] == "None"
        assert service["spec"]["selector"] == selectors[name]
        wanted = monitor["spec"]["selector"]["matchLabels"]
        assert wanted.items() <= service["metadata"]["labels"].items()
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
        assert endpoint["relabelings"][0]["replacement"] == name


def test_pod_and_service_monitors_together_are_refused_naming_both(chart: Path) -> None:
    result = template(
        chart, ["monitoring.podMonitors.enabled=true", "monitoring.serviceMonitors.enabled=true"]
    )
    assert result.returncode != 0
    assert "monitoring.podMonitors.enabled and monitoring.serviceMonitors.enabled" in result.stderr


def test_the_prometheus_rule_is_alerts_yaml(chart: Path) -> None:
    (rule,) = by_kind(
        render(chart, "monitoring.prometheusRule.enabled=true"), "PrometheusRule"
    ).values()
    assert rule["spec"]["groups"] == load_rules()["groups"]


def test_runbook_base_and_extra_labels_are_added_without_overriding_severity(
    chart: Path,
) -> None:
    (rule,) = by_kind(
        render(
            chart,
            "monitoring.prometheusRule.enabled=true",
            "monitoring.prometheusRule.runbookBaseUrl=https://example.com/headroom/blob/main/",
            "monitoring.prometheusRule.additionalRuleLabels.team=ml",
            "monitoring.prometheusRule.additionalRuleLabels.severity=info",
        ),
        "PrometheusRule",
    ).values()
    expected = load_rules()["groups"]
    for group, wanted in zip(rule["spec"]["groups"], expected, strict=True):
        for got, want in zip(group["rules"], wanted["rules"], strict=True):
            assert got["annotations"]["runbook_url"] == (
                "https://example.com/headroom/blob/main/" + want["annotations"]["runbook_url"]
            )
            assert got["labels"] == {**want["labels"], "team": "ml"}
            assert got["expr"] == want["expr"]


def test_the_dashboard_config_map_is_for_grafanas_sidecar(chart: Path) -> None:
    (config,) = by_kind(
        render(
            chart,
            "monitoring.dashboard.enabled=true",
            "monitoring.dashboard.namespace=monitoring",
            "monitoring.dashboard.annotations.grafana_folder=Headroom",
        ),
        "ConfigMap",
    ).values()
    assert config["metadata"]["namespace"] == "monitoring"
    assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config["metadata"]["annotations"] == {"grafana_folder": "Headroom"}
    assert json.loads(config["data"]["headroom.json"]) == json.loads(DASHBOARD.read_text())
