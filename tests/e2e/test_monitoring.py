"""The shipped alerts and dashboard against the real components, scraped by a real Prometheus.

Started as the other e2e tests start them: the headroom kube-scheduler with the extender
(`running_stack`, here with `--metrics-bind`), two node agents over the fake NVML with the
agent's own identity (as tests/e2e/test_nodeagent.py), the webhook over TLS (tests/webhook's
server; it is sent one review directly and not registered, so no other test meets it). The scene
gives every series something to say: a Deployment whose AIScaler wants 3 replicas where the two
GPUs hold 2 (limited by GPU headroom, its replicas' cold start measured by a kubelet stand-in), and
a pod no GPU can hold (waiting for GPU memory). Prometheus scrapes all of them under the job labels
the chart's monitors give, with the rules loaded as they ship.

Then: Prometheus loads and evaluates every alert without error; every alert expression parses and
each of its selectors matches series; every dashboard query parses and returns series; a metric
renamed in a copy of the rules or the dashboard is reported; and a critical XID on a fake GPU fires
HeadroomGpuXidCritical for that GPU.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from headroom import names
from kubeapi.client import ApiError, Kube
from tests.e2e.nodeagent_fleet import agent_pod_token, install_agent_identity
from tests.e2e.scaler_scenes import AISCALERS, Kubelet, aiscaler, deployment
from tests.e2e.stack import Stack, running_stack
from tests.monitoring.prometheus import api, firing, problems, rule_health, running_prometheus
from tests.monitoring.shipped import (
    ALERTS,
    DASHBOARD,
    Query,
    alert_queries,
    alerts,
    dashboard_queries,
)
from tests.waiting import poll, wait_for
from tests.webhook.helpers import PROFILES_FILE, encode, gpu_pod, review_body
from tests.webhook.server import Server, make_certs, webhook_server
from tooling.demo.processes import Supervisor
from tooling.fakenvml import GIB, FakeNvml, agent_env, build, device
from tooling.localcluster import LocalCluster
from tooling.process import free_port

HEADROOM = Path(sys.executable).parent / "headroom"
GROUP = "monitoring"
SETTLE_SECONDS = 120.0  # scrapes (every second) catching up with the scene


@dataclass
class Monitored:
    prometheus: str
    stack: Stack
    namespace: str
    nodes: list[str]
    fake_gpus: list[FakeNvml]


@pytest.fixture(scope="module")
def monitored(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Monitored]:
    work = tmp_path_factory.mktemp("monitoring")
    metrics_port = free_port()
    with ExitStack() as cleanup:
        stack = cleanup.enter_context(
            running_stack(cluster, extender_args=[f"--metrics-bind=127.0.0.1:{metrics_port}"])
        )
        namespace = make_namespace(stack.kube)
        cleanup.callback(
            cluster.kubectl, "delete", "namespace", namespace, "--wait=false", check=False
        )
        supervisor = Supervisor(work / "logs")
        cleanup.callback(supervisor.stop_all)
        nodes = [f"mon-{stack.label}-{i}" for i in range(2)]
        cleanup.callback(delete_nodes, cluster, nodes)
        fake_gpus, agent_ports = start_agents(cluster, stack, supervisor, nodes, work)
        certs = make_certs(work / "certs")
        webhook = webhook_server(work, PROFILES_FILE, certs=certs).start()
        cleanup.callback(webhook.stop)
        review(webhook)
        config = prometheus_config(
            extender=f"127.0.0.1:{metrics_port}",
            webhook=f"127.0.0.1:{webhook.port}",
            agents=[f"127.0.0.1:{p}" for p in agent_ports],
            ca_file=certs / "ca.crt",
        )
        url = cleanup.enter_context(running_prometheus(config, work / "prometheus"))
        kubelet = Kubelet(stack.kube, namespace)
        cleanup.callback(kubelet.stop)
        stage_the_scene(stack, namespace, prometheus=url)
        yield Monitored(url, stack, namespace, nodes, fake_gpus)


def make_namespace(kube: Kube) -> str:
    name = f"t-mon-{uuid.uuid4().hex[:6]}"
    kube.request("POST", "/api/v1/namespaces", body={"metadata": {"name": name}})

    def has_default_account() -> bool:
        try:
            kube.request("GET", f"/api/v1/namespaces/{name}/serviceaccounts/default")
        except ApiError:
            return False
        return True

    if not poll(has_default_account, timeout_seconds=30, interval_seconds=0.1):
        print(f"namespace {name}: no default ServiceAccount after 30s; creating it")
        kube.request(
            "POST",
            f"/api/v1/namespaces/{name}/serviceaccounts",
            body={"metadata": {"name": "default"}},
        )
    return name


def start_agents(
    cluster: LocalCluster, stack: Stack, supervisor: Supervisor, nodes: list[str], work: Path
) -> tuple[list[FakeNvml], list[int]]:
    """One 24Gi GPU per node, each node with its agent. XIDs hold no GPU here
    (--xid-hold-seconds=0), so the one the test injects changes nothing but the count."""
    install_agent_identity(cluster)
    library = build()
    (work / "proc").mkdir(exist_ok=True)  # no process on these GPUs
    fakes, ports = [], []
    for node in nodes:
        register_node(stack, node)
        kubeconfig = cluster.token_kubeconfig(
            work / f"{node}.kubeconfig",
            agent_pod_token(cluster, stack.kube, node),
            user="nodeagent",
        )
        fake = FakeNvml(work / f"{node}.json", {"devices": [device(0, uuid=f"GPU-{node}-0")]})
        port = free_port()
        supervisor.start(
            f"nodeagent-{node}",
            [
                str(HEADROOM),
                "nodeagent",
                f"--node-name={node}",
                f"--kubeconfig={kubeconfig}",
                "--interval-seconds=1",
                f"--proc-root={work / 'proc'}",
                f"--metrics-bind=127.0.0.1:{port}",
                "--xid-hold-seconds=0",
            ],
            env=agent_env(library, fake.path),
        )
        fakes.append(fake)
        ports.append(port)
    wait_for(
        lambda: published(stack.kube, nodes, supervisor),
        timeout_seconds=SETTLE_SECONDS,
        message="each node agent's first GPUNode report",
        ignore=(ApiError,),
    )
    return fakes, ports


def published(kube: Kube, nodes: list[str], supervisor: Supervisor) -> bool:
    for child in supervisor.dead():
        raise AssertionError(f"{child.name} exited: {child.log_tail()}")
    path = f"/apis/{names.GROUP_VERSION}/{names.GPUNODE_PLURAL}"
    reported = {
        o["metadata"]["name"]
        for o in kube.request("GET", path)["items"]
        if (o.get("status") or {}).get("gpuCount")
    }
    return reported >= set(nodes)


def register_node(stack: Stack, node: str) -> None:
    labels = {
        "headroom-e2e": stack.label,
        "headroom-e2e-group": GROUP,
        names.GPU_PRESENT_NODE_LABEL: "true",
    }
    stack.kube.request("POST", "/api/v1/nodes", body={"metadata": {"name": node, "labels": labels}})
    capacity = {"cpu": "64", "memory": "512Gi", "pods": "110", names.GPU_RESOURCE: "1"}
    stack.kube.request(
        "PATCH",
        f"/api/v1/nodes/{node}/status",
        content_type="application/merge-patch+json",
        body={
            "status": {
                "capacity": capacity,
                "allocatable": capacity,
                "conditions": [{"type": "Ready", "status": "True"}],
            }
        },
    )


def delete_nodes(cluster: LocalCluster, nodes: list[str]) -> None:
    cluster.kubectl("delete", "node", *nodes, "--wait=false", "--ignore-not-found", check=False)
    agent_pods = [f"headroom-nodeagent-{node}" for node in nodes]
    cluster.kubectl(
        "delete",
        "pod",
        "-n",
        names.SYSTEM_NAMESPACE,
        *agent_pods,
        "--wait=false",
        "--ignore-not-found",
        check=False,
    )


def review(webhook: Server) -> None:
    """One admission review, answered, so the latency histogram has an observation."""
    pod = gpu_pod(annotations={names.GPU_MEMORY_ANNOTATION: "20Gi"})
    status, answer = webhook.post("/mutate", encode(review_body(pod)))
    assert status == 200 and answer["response"]["allowed"], answer


def prometheus_config(
    *, extender: str, webhook: str, agents: list[str], ca_file: Path
) -> dict[str, Any]:
    """The chart's monitors as static configs: the same job labels, the extender's labels
    honoured (the AIScalers' `namespace`), the webhook over TLS checked with its CA."""
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [
            {
                "job_name": "headroom-extender",
                "honor_labels": True,
                "static_configs": [{"targets": [extender]}],
            },
            {
                "job_name": "headroom-webhook",
                "scheme": "https",
                "tls_config": {"ca_file": str(ca_file)},
                "static_configs": [{"targets": [webhook]}],
            },
            {"job_name": "headroom-nodeagent", "static_configs": [{"targets": agents}]},
        ],
    }


def stage_the_scene(stack: Stack, namespace: str, *, prometheus: str) -> None:
    """The AIScaler held back by the GPUs, with a cold start measured, and a pod waiting."""
    kube = stack.kube
    kube.request(
        "POST",
        f"/apis/apps/v1/namespaces/{namespace}/deployments",
        body=deployment(stack.label, group=GROUP),
    )
    scaler = aiscaler("vector(30)")  # 30 against an average of 10 per replica: 3 wanted
    scaler["spec"]["metrics"][0]["serverAddress"] = prometheus
    kube.request("POST", AISCALERS.format(namespace=namespace), body=scaler)
    stack.pod(namespace, "too-big", memory="200Gi", group=GROUP)  # no 24Gi GPU holds it

    seen: dict[str, Any] = {}

    def scene_set() -> bool:
        status = (
            kube.request("GET", AISCALERS.format(namespace=namespace) + "/model").get("status")
            or {}
        )
        conditions = {c["type"]: c for c in status.get("conditions") or []}
        seen.update(
            status=status,
            waiting=stack.metric("headroom_extender_pods_waiting_for_gpu_memory") or 0,
        )
        return (
            "coldStart" in status
            and conditions.get("ScalingLimited", {}).get("reason") == "InsufficientGPUHeadroom"
            and seen["waiting"] >= 1
        )

    if not poll(scene_set, timeout_seconds=SETTLE_SECONDS, ignore=(ApiError,)):
        raise AssertionError(
            "the AIScaler limited by GPU headroom with a cold start, and a pod waiting: not "
            f"within {SETTLE_SECONDS:g}s; last seen {seen}"
        )


def settled(url: str, queries: list[Query], *, want_results: bool) -> list[str]:
    """The checker's problems once they stop changing for the better: [] when all is found."""
    last: list[str] = []

    def clean() -> bool:
        nonlocal last
        last = problems(url, queries, want_results=want_results)
        return not last

    poll(clean, timeout_seconds=SETTLE_SECONDS, interval_seconds=1.0)
    return last


def test_prometheus_loads_and_evaluates_every_alert(monitored: Monitored) -> None:
    wanted = {rule["alert"] for rule in alerts()}
    health: dict[str, tuple[str, str]] = {}

    def evaluated() -> bool:
        nonlocal health
        health = {
            name: h for name, h in rule_health(monitored.prometheus).items() if name in wanted
        }
        return set(health) == wanted and all(h != "unknown" for h, _ in health.values())

    wait_for(evaluated, timeout_seconds=60, message="every alert evaluated")
    assert {name: h for name, h in health.items() if h != ("ok", "")} == {}


def test_every_alert_expression_parses_and_each_selector_matches_series(
    monitored: Monitored,
) -> None:
    assert settled(monitored.prometheus, alert_queries(), want_results=False) == []


def test_every_dashboard_query_parses_and_returns_series(monitored: Monitored) -> None:
    assert settled(monitored.prometheus, dashboard_queries(), want_results=True) == []


def test_a_metric_renamed_in_the_rules_or_the_dashboard_is_reported(
    monitored: Monitored,
) -> None:
    url = monitored.prometheus
    assert settled(url, alert_queries(), want_results=False) == []
    rules = renamed(ALERTS, "headroom_gpu_lost ", "headroom_gpu_lost_renamed ")
    assert problems(url, alert_queries(yaml.safe_load(rules)), want_results=False) == [
        "alert HeadroomGpuLost: headroom_gpu_lost_renamed matches no series"
    ]
    dashboard = renamed(
        DASHBOARD,
        "headroom_scaler_cold_start_p90_seconds{",
        "headroom_scaler_cold_start_p99_seconds{",
    )
    found = problems(url, dashboard_queries(json.loads(dashboard)), want_results=True)
    assert sorted(found) == [
        "panel 'Cold start (creation to serving)' B: headroom_scaler_cold_start_p99_seconds"
        '{namespace=~".*"} matches no series',
        "panel 'Cold start (creation to serving)' B: no series for 'max by (namespace, name) "
        '(headroom_scaler_cold_start_p99_seconds{namespace=~".*"})\'',
    ]


def renamed(path: Path, old: str, new: str) -> str:
    """The file's text with one metric renamed (`old` must be in it)."""
    text = path.read_text()
    assert old in text, old
    return text.replace(old, new)


def test_the_series_say_what_the_scene_is(monitored: Monitored) -> None:
    """The AIScaler limited by the GPUs, the waiting pod and the nodes' GPUs, as Prometheus has
    them from the components."""
    url, namespace = monitored.prometheus, monitored.namespace

    def value(expr: str) -> float | None:
        result = api(url, "/api/v1/query", query=expr)["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    scaler = f'namespace="{namespace}",name="model"'
    wait_for(
        lambda: value(f"max(headroom_scaler_limited_by_gpu{{{scaler}}})") == 1,
        timeout_seconds=SETTLE_SECONDS,
        message="headroom_scaler_limited_by_gpu 1 in Prometheus",
    )
    assert value(f"max(headroom_scaler_desired_replicas{{{scaler}}})") == 3
    assert value(f"max(headroom_scaler_feasible_replicas{{{scaler}}})") == 2
    cold_start_p90 = value(f"max(headroom_scaler_cold_start_p90_seconds{{{scaler}}})")
    assert cold_start_p90 is not None and cold_start_p90 >= 0  # the stand-in kubelet is quick
    assert (value("max(headroom_extender_pods_waiting_for_gpu_memory)") or 0) >= 1
    for node in monitored.nodes:
        assert value(f'headroom_gpu_memory_total_bytes{{node="{node}"}}') == 24 * GIB
        assert value(f'headroom_extender_gpu_report_age_seconds{{node="{node}"}}') is not None


def test_a_critical_xid_on_a_gpu_fires_its_alert(monitored: Monitored) -> None:
    node = monitored.nodes[1]
    monitored.fake_gpus[1].add_event(0, 79)  # fallen off the bus

    def fired() -> bool:
        return any(
            alert.get("alertname") == "HeadroomGpuXidCritical"
            and alert.get("node") == node
            and alert.get("uuid") == f"GPU-{node}-0"
            for alert in firing(monitored.prometheus)
        )

    wait_for(fired, timeout_seconds=SETTLE_SECONDS, message=f"HeadroomGpuXidCritical on {node}")
