"""`helm install` on the real control plane gives a working Headroom, with no other command.

The chart's pods run: tooling/podrunner.py is a kubelet for Headroom's pods on a GPU Node of its
own (one fake GPU: the fake NVML stands in for the driver the NVIDIA runtime would mount into
the node agent), and the stock kube-scheduler places them there. Each becomes Ready by its own
probes; the endpoint-slice controller gives the webhook's Service its endpoint, and the API
server calls the webhook through that Service (`--enable-aggregator-routing`: by endpoint, since
nothing routes a ClusterIP here). Then:

- the webhook's serving certificate is the chart's own sidecar's (`headroom certs manage`, a
  native sidecar whose startup probe holds the webhook back until the pair is written): the
  caBundle it patched is what the API server trusts;
- the first managed GPU pod is mutated;
- it is placed by Headroom's own scheduler (the chart's kube-scheduler and extender pod), on the
  GPU the chart's node agent reported;
- each component runs as its chart ServiceAccount: the API server names that account when asked
  with the credentials the podrunner gave the process (a token the TokenRequest API bound to the
  pod, in the kubeconfig that stands in for in-cluster access);
- a deleted webhook pod is replaced by its ReplicaSet and the replacement serves.

A control plane of this module's own, as tests/e2e/test_chart.py has (helm refuses to adopt the
session cluster's CRDs). One replica each: every pod here shares the host's network, so two
webhooks would both want port 8443.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from headroom import names
from kubeapi.client import ApiError, Kube, load_api_client
from tests.e2e.waiting import eventually
from tests.webhook.helpers import gpu_pod
from tooling.fakenvml import GIB, STATE_ENV, FakeNvml, build, device
from tooling.helm import CHART, run_helm
from tooling.helm.manifests import RELEASE
from tooling.localcluster import LocalCluster, ensure_binaries
from tooling.podrunner import PodRunner
from tooling.podrunner_host import host_ipv4
from webhook.mutate import MUTATED_BY_ANNOTATION

NS = names.SYSTEM_NAMESPACE
NODE = "gpu-node-1"
GPU_MIB = 24 * 1024
# Only what one host can hold: one replica of each Deployment (see the module docstring).
VALUES = ("webhook.replicas=1", "extender.replicas=1")
COMPONENTS = {  # the pods' app.kubernetes.io/component, and the account each container runs as
    "webhook": {"certs": "headroom-webhook", "webhook": "headroom-webhook"},
    "scheduler": {"kube-scheduler": "headroom-scheduler", "extender": "headroom-extender"},
    "nodeagent": {"nodeagent": "headroom-nodeagent"},
}
Obj = dict[str, Any]


@pytest.fixture(scope="module")
def host_ip() -> str:
    ip = host_ipv4()
    if ip is None:
        reason = (
            "this host has no IPv4 address but loopback or link-local, and the API server "
            "refuses those as a pod's endpoint"
        )
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    return ip


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    ensure_binaries()
    with LocalCluster(tmp_path_factory.mktemp("helm-install")) as local:
        local.start_scheduler()  # the default scheduler, which places the chart's pods
        yield local


@pytest.fixture(scope="module")
def runner(
    cluster: LocalCluster, host_ip: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PodRunner]:
    workdir = tmp_path_factory.mktemp("podrunner")
    gpus = FakeNvml(workdir / "nvml.json", {"devices": [device(0, total=24 * GIB)]})
    library = build()
    with PodRunner.for_cluster(
        cluster,
        node_name=NODE,
        workdir=workdir,
        host_ip=host_ip,
        # As GPU feature discovery and the device plugin would label and size a node with it.
        node_labels={
            names.GPU_PRESENT_NODE_LABEL: "true",
            names.GPU_MEMORY_NODE_LABEL: str(GPU_MIB),
        },
        node_capacity={"nvidia.com/gpu": "1"},
        nvidia_env={"LD_LIBRARY_PATH": str(library.parent), STATE_ENV: str(gpus.path)},
    ) as run:
        yield run


@pytest.fixture(scope="module")
def kube(cluster: LocalCluster) -> Kube:
    return Kube(load_api_client(str(cluster.kubeconfig)))


@dataclass(frozen=True)
class Installed:
    runner: PodRunner
    started: float  # when `helm install` was run, monotonic seconds


@pytest.fixture(scope="module")
def installed(
    cluster: LocalCluster,
    runner: PodRunner,
    kube: Kube,
) -> Installed:
    """`helm install`, and every component's pod Ready on the node."""
    started = time.monotonic()
    sets = [a for v in VALUES for a in ("--set", v)]
    run_helm(
        [
            "install", RELEASE, str(CHART), "--namespace", NS, "--create-namespace",
            "--wait=false", "--kubeconfig", str(cluster.kubeconfig), *sets,
        ],
        timeout_seconds=300,
    )  # fmt: skip
    with explained(runner):
        eventually(
            lambda: {c: ready_pods(kube, c) for c in COMPONENTS} == {c: 1 for c in COMPONENTS},
            timeout_seconds=300,
            what="one Ready pod of each component",
        )
    print(f"helm install to every pod Ready: {time.monotonic() - started:.1f}s")
    return Installed(runner, started)


@contextmanager
def explained(runner: PodRunner) -> Iterator[None]:
    """On a failure, print what the podrunner saw: each container's state and log tail."""
    try:
        yield
    except BaseException:
        print(runner.describe())
        raise


def pods(kube: Kube, component: str) -> list[Obj]:
    selector = f"app.kubernetes.io/part-of=headroom,app.kubernetes.io/component={component}"
    items: list[Obj] = kube.request(
        "GET", f"/api/v1/namespaces/{NS}/pods", query={"labelSelector": selector}
    )["items"]
    return items


def is_ready(pod: Obj) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return not pod["metadata"].get("deletionTimestamp") and any(
        c["type"] == "Ready" and c["status"] == "True" for c in conditions
    )


def ready_pods(kube: Kube, component: str) -> int:
    return sum(is_ready(p) for p in pods(kube, component))


def endpoint_addresses(kube: Kube) -> list[str]:
    slices = kube.request(
        "GET",
        f"/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices",
        query={"labelSelector": "kubernetes.io/service-name=headroom-webhook"},
    )["items"]
    return [
        address
        for s in slices
        for e in s.get("endpoints") or []
        if (e.get("conditions") or {}).get("ready")
        for address in e["addresses"]
    ]


def managed_namespace(kube: Kube, name: str) -> str:
    kube.request(
        "POST",
        "/api/v1/namespaces",
        body={"metadata": {"name": name, "labels": {names.MANAGED_LABEL: names.MANAGED_VALUE}}},
    )
    eventually(
        lambda: bool(kube.request("GET", f"/api/v1/namespaces/{name}/serviceaccounts/default")),
        timeout_seconds=60,
        what="the namespace's default ServiceAccount",
    )
    return name


def create_pod(kube: Kube, namespace: str, name: str) -> Obj:
    """Create a managed pod sharing a GPU (10Gi of it). With failurePolicy Fail the API server
    refuses it until it reaches the webhook (its view of the endpoints may lag the EndpointSlice
    by a moment): that refusal is retried, and only it."""
    pod = gpu_pod(
        gpus=None,
        annotations={names.GPU_MEMORY_ANNOTATION: "10Gi", names.GPU_SHARING_ANNOTATION: "true"},
    )
    pod["metadata"]["name"] = name
    created: list[Obj] = []

    def attempt() -> bool:
        try:
            created.append(kube.request("POST", f"/api/v1/namespaces/{namespace}/pods", body=pod))
        except ApiError as exc:
            if "failed calling webhook" not in str(exc):
                raise
            print(f"not yet: {exc}")
            return False
        return True

    eventually(attempt, timeout_seconds=60, what=f"pod {name} admitted")
    return created[0]


def ca_bundles(kube: Kube) -> list[bytes]:
    config = kube.request(
        "GET",
        "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/headroom-webhook",
    )
    return [base64.b64decode(h["clientConfig"].get("caBundle", "")) for h in config["webhooks"]]


def secret_ca(kube: Kube) -> bytes:
    secret = kube.request("GET", f"/api/v1/namespaces/{NS}/secrets/headroom-webhook-tls")
    return base64.b64decode(secret["data"]["ca.crt"])


def get_pod(kube: Kube, namespace: str, name: str) -> Obj:
    pod: Obj = kube.request("GET", f"/api/v1/namespaces/{namespace}/pods/{name}")
    return pod


def test_the_first_managed_pod_is_mutated_and_placed_by_headrooms_scheduler(
    installed: Installed, kube: Kube
) -> None:
    runner = installed.runner
    with explained(runner):
        (webhook,) = pods(kube, "webhook")
        assert webhook["spec"]["nodeName"] == NODE
        assert webhook["status"]["podIP"] == runner.host_ip
        eventually(
            lambda: endpoint_addresses(kube) == [runner.host_ip],
            timeout_seconds=60,
            what="the webhook Service's endpoint",
        )
        assert [c["started"] for c in webhook["status"]["initContainerStatuses"]] == [True]
        # The webhook started once the sidecar's pair was there: it never had to restart.
        assert [c["restartCount"] for c in webhook["status"]["containerStatuses"]] == [0]
        assert ca_bundles(kube) == [secret_ca(kube)] * 2  # the sidecar's CA, in both webhooks
        first = create_pod(kube, managed_namespace(kube, "llm"), "first")
        print(f"helm install to the first mutated pod: {time.monotonic() - installed.started:.1f}s")
        assert MUTATED_BY_ANNOTATION in first["metadata"]["annotations"]
        assert first["spec"]["schedulerName"] == "headroom"
        assert {"conditionType": "headroom.dev/gpu-ready"} in first["spec"]["readinessGates"]
        # Placed by the chart's scheduler pod: its extender gives it the GPU the chart's node
        # agent reported (the fake's one GPU, by its UUID).
        eventually(
            lambda: bool(get_pod(kube, "llm", "first")["spec"].get("nodeName")),
            timeout_seconds=120,
            what="the pod placed",
        )
        placed = get_pod(kube, "llm", "first")
        assert placed["spec"]["nodeName"] == NODE
        annotations = placed["metadata"]["annotations"]
        assert annotations[names.ASSIGNED_GPUS_ANNOTATION] == device(0)["uuid"]


def test_each_component_runs_as_its_chart_service_account(installed: Installed, kube: Kube) -> None:
    with explained(installed.runner):
        found = {}
        for component, accounts in COMPONENTS.items():
            (pod,) = [p for p in pods(kube, component) if is_ready(p)]
            for container in accounts:
                found[container] = whoami(installed.runner, pod, container)
        assert found == {
            container: f"system:serviceaccount:{NS}:{account}"
            for accounts in COMPONENTS.values()
            for container, account in accounts.items()
        }


def whoami(runner: PodRunner, pod: Obj, container: str) -> str:
    """Who the API server says `container` is, asked with the kubeconfig the podrunner gave it
    in place of in-cluster access (a SelfSubjectReview)."""
    meta = pod["metadata"]
    (kubeconfig,) = (runner.workdir / "pods").glob(
        f"{meta['namespace']}_{meta['name']}_*/kubeconfigs/{container}.yaml"
    )
    config = yaml.safe_load(kubeconfig.read_text())
    assert config["clusters"][0]["cluster"]["server"].startswith("https://127.0.0.1:")
    review = Kube(load_api_client(str(kubeconfig))).request(
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
    )
    username: str = review["status"]["userInfo"]["username"]
    return username


def test_a_deleted_webhook_pod_is_replaced_and_the_replacement_serves(
    installed: Installed, kube: Kube
) -> None:
    with explained(installed.runner):
        (old,) = pods(kube, "webhook")
        kube.request("DELETE", f"/api/v1/namespaces/{NS}/pods/{old['metadata']['name']}")

        def replaced() -> bool:
            current = pods(kube, "webhook")
            uids = [p["metadata"]["uid"] for p in current if is_ready(p)]
            return len(current) == 1 and uids not in ([], [old["metadata"]["uid"]])

        # The old pod's preStop hook (5 s), its graceful stop and the new one's start (its port
        # is free once the old process is gone): well within this.
        eventually(replaced, timeout_seconds=120, what="a new Ready webhook pod, the old one gone")
        created = create_pod(kube, "llm", "second")
        assert MUTATED_BY_ANNOTATION in created["metadata"]["annotations"]
