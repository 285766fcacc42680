"""The webhook on a real control plane: registered with the caBundle `headroom certs generate`
wrote, it mutates managed pods (also those a Deployment creates), leaves others alone, refuses
bad annotations with a message the user sees, and with the webhook down behaves as its
failurePolicy (Fail) says.

The shipped MutatingWebhookConfiguration is registered as it is, with only what a run on loopback
must fill in (`tooling.shipped`): there are no Services or kube-proxy here (no kubelet, nothing
routes a ClusterIP), so each webhook is called by URL, https://127.0.0.1:PORT/mutate, with the
caBundle, and its certificate carries the IP. It is registered for this module only; pods of other
modules carry no `headroom.dev/managed` label, so they never meet it. It reads DRA claims as its
own ServiceAccount with the shipped RBAC (a token from the TokenRequest API in a kubeconfig), so
the ClusterRole is shown to be enough.
"""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kubeapi.client import ApiError, Kube
from tests.waiting import wait_for
from tests.webhook.helpers import PROFILES_FILE, ROOT, corpus, gpu_pod
from tests.webhook.server import Server, webhook_server
from tooling import shipped
from tooling.dra import claim_template
from tooling.localcluster import LocalCluster
from webhook.mutate import MUTATED_BY_ANNOTATION

PODS = "/api/v1/namespaces/{ns}/pods"
TEMPLATES = "/apis/resource.k8s.io/v1/namespaces/{ns}/resourceclaimtemplates"
WEBHOOK_ACCOUNT = "system:serviceaccount:headroom-system:headroom-webhook"


@dataclass
class Registered:
    server: Server
    config_name: str
    certs: Path
    kubeconfig: Path  # the webhook's ServiceAccount's


def register(cluster: LocalCluster, server: Server, certs: Path, kubeconfig: Path) -> Registered:
    """The shipped configuration, calling `server` by URL with the caBundle; nothing else
    differs from the file (asserted)."""
    manifest = shipped.webhook_configuration(
        base_url=f"https://127.0.0.1:{server.port}",
        ca_bundle=(certs / "cabundle.txt").read_text().strip(),
    )
    assert (
        shipped.differences(
            shipped.load(shipped.WEBHOOK_CONFIG), manifest, allowed=shipped.FILLED_IN["webhook"]
        )
        == []
    )
    cluster.kubectl("apply", "-f", "-", input_text=json.dumps(manifest))
    return Registered(
        server=server, config_name=manifest["metadata"]["name"], certs=certs, kubeconfig=kubeconfig
    )


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("webhook-certs")
    # The certificates exactly as a user makes them, with the loopback IP as a name.
    from cli.main import main  # noqa: PLC0415

    assert (
        main(
            [
                "certs",
                "generate",
                "--out",
                str(directory),
                "--service",
                "headroom-webhook",
                "--ip",
                "127.0.0.1",
                "--force",
            ]
        )
        == 0
    )
    return directory


@pytest.fixture(scope="module")
def webhook_kubeconfig(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kubeconfig of the webhook's ServiceAccount, with the shipped RBAC applied."""
    webhook = ROOT / "manifests" / "webhook"
    cluster.kubectl("apply", "-f", str(ROOT / "manifests" / "namespace.yaml"))
    cluster.kubectl(
        "apply", "-f", str(webhook / "serviceaccount.yaml"), "-f", str(webhook / "rbac.yaml")
    )
    token = cluster.service_account_token("headroom-system", "headroom-webhook")
    path = tmp_path_factory.mktemp("webhook-account") / "kubeconfig"
    return cluster.token_kubeconfig(path, token, user="headroom-webhook")


def start_webhook(workdir: Path, certs: Path, kubeconfig: Path) -> Server:
    profiles = workdir / "profiles.yaml"
    shutil.copyfile(PROFILES_FILE, profiles)
    extra = [f"--kubeconfig={kubeconfig}"]
    return webhook_server(workdir, profiles, certs=certs, extra=extra).start()


@pytest.fixture(scope="module")
def registered(
    cluster: LocalCluster,
    certs: Path,
    webhook_kubeconfig: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Registered]:
    server = start_webhook(tmp_path_factory.mktemp("webhook"), certs, webhook_kubeconfig)
    reg = register(cluster, server, certs, webhook_kubeconfig)
    try:
        yield reg
    finally:
        cluster.kubectl("delete", "mutatingwebhookconfiguration", reg.config_name, check=False)
        server.stop()


def create(
    kube: Kube, namespace: str, pod: dict[str, Any], *, dry_run: bool = False
) -> dict[str, Any]:
    pod = copy.deepcopy(pod)
    pod["metadata"]["namespace"] = namespace
    return kube.request(
        "POST", PODS.format(ns=namespace), body=pod, query={"dryRun": "All"} if dry_run else None
    )


def wait_for_mutation(kube: Kube, namespace: str, server: Server | None = None) -> None:
    """The API server picks a new webhook configuration up asynchronously: wait until a probe
    is mutated (by `server`, when given: its own count of reviews rises)."""
    probe = gpu_pod()
    probe["metadata"]["name"] = "webhook-probe"  # a dry run: never stored, so never taken

    def mutated() -> bool:
        before = server.reviews() if server is not None else 0
        annotations = create(kube, namespace, probe, dry_run=True)["metadata"].get(
            "annotations", {}
        )
        return MUTATED_BY_ANNOTATION in annotations and (
            server is None or server.reviews() > before
        )

    wait_for(mutated, timeout_seconds=30, message="the webhook in use", interval_seconds=0.2)


@pytest.fixture
def managed_ns(kube: Kube, namespace: str, registered: Registered) -> str:
    wait_for_mutation(kube, namespace)
    return namespace


def is_mutated(pod: dict[str, Any]) -> bool:
    spec = pod["spec"]
    return (
        spec["schedulerName"] == "headroom"
        and {"conditionType": "headroom.dev/gpu-ready"} in spec.get("readinessGates", [])
        and MUTATED_BY_ANNOTATION in pod["metadata"].get("annotations", {})
    )


def test_a_managed_pod_is_mutated(kube: Kube, managed_ns: str) -> None:
    created = create(kube, managed_ns, corpus()["vllm"])
    pod = kube.request("GET", f"{PODS.format(ns=managed_ns)}/{created['metadata']['name']}")
    assert is_mutated(pod)
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["spec"][
        "tolerations"
    ]
    terms = pod["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]["nodeSelectorTerms"]
    assert terms == [
        {
            "matchExpressions": [
                {"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]},
                {"key": "nvidia.com/gpu.memory", "operator": "Gt", "values": ["20479"]},
            ]
        }
    ]


def test_a_managed_deployments_pods_are_mutated(kube: Kube, managed_ns: str) -> None:
    template = gpu_pod(annotations={"headroom.dev/gpu-memory": "10Gi"}, labels={"app": "llm"})
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "llm", "namespace": managed_ns},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "llm"}},
            "template": {
                "metadata": {k: v for k, v in template["metadata"].items() if k != "name"},
                "spec": template["spec"],
            },
        },
    }
    kube.request("POST", f"/apis/apps/v1/namespaces/{managed_ns}/deployments", body=deployment)

    def pods() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = kube.request(
            "GET", PODS.format(ns=managed_ns), query={"labelSelector": "app=llm"}
        )["items"]
        return items

    wait_for(
        lambda: len(pods()) == 2,
        timeout_seconds=60,
        message="the Deployment's two pods",
        interval_seconds=0.3,
    )
    for pod in pods():
        assert is_mutated(pod), pod["metadata"]["name"]
        assert pod["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"


def test_an_unmanaged_pod_is_untouched(kube: Kube, managed_ns: str) -> None:
    pod = gpu_pod(labels={"headroom.dev/managed": "false"})
    created = create(kube, managed_ns, pod)
    assert created["spec"]["schedulerName"] == "default-scheduler"
    assert "readinessGates" not in created["spec"] and "affinity" not in created["spec"]
    assert MUTATED_BY_ANNOTATION not in created["metadata"].get("annotations", {})


def test_the_api_server_does_not_call_the_webhook_for_pods_that_ask_for_no_gpu(
    kube: Kube, managed_ns: str, registered: Registered
) -> None:
    # matchConditions: CEL in the API server decides, so such pods cost no round trip.
    before = registered.server.reviews()
    web = gpu_pod(gpus=None)
    web["metadata"]["name"] = "web"
    created = create(kube, managed_ns, web)
    assert created["spec"]["schedulerName"] == "default-scheduler"
    assert MUTATED_BY_ANNOTATION not in created["metadata"].get("annotations", {})
    assert registered.server.reviews() == before
    # A pod that names a headroom.dev/ annotation is still sent, so a bad one is refused.
    named = gpu_pod(gpus=None, annotations={"headroom.dev/gpu-memory": "10Gi"})
    named["metadata"]["name"] = "named"
    assert is_mutated(create(kube, managed_ns, named))
    assert registered.server.reviews() == before + 1


def test_a_namespace_labelled_managed_opts_its_gpu_pods_in(kube: Kube, managed_ns: str) -> None:
    kube.request(
        "PATCH",
        f"/api/v1/namespaces/{managed_ns}",
        body={"metadata": {"labels": {"headroom.dev/managed": "true"}}},
        content_type="application/merge-patch+json",
    )
    unlabelled = gpu_pod(annotations={"headroom.dev/gpu-memory": "10Gi"})
    del unlabelled["metadata"]["labels"]["headroom.dev/managed"]
    wait_for(
        lambda: is_mutated(create(kube, managed_ns, unlabelled, dry_run=True)),
        timeout_seconds=30,
        message="the namespace webhook in use",
        interval_seconds=0.2,
    )
    assert is_mutated(create(kube, managed_ns, unlabelled))
    no_gpu = gpu_pod(gpus=None)
    del no_gpu["metadata"]["labels"]["headroom.dev/managed"]
    no_gpu["metadata"]["name"] = "web"
    assert create(kube, managed_ns, no_gpu)["spec"]["schedulerName"] == "default-scheduler"
    opted_out = gpu_pod(labels={"headroom.dev/managed": "false"})
    opted_out["metadata"]["name"] = "opted-out"
    assert create(kube, managed_ns, opted_out)["spec"]["schedulerName"] == "default-scheduler"


def test_a_bad_annotation_is_refused_and_the_user_sees_why(
    cluster: LocalCluster, managed_ns: str
) -> None:
    pod = gpu_pod(annotations={"headroom.dev/gpu-memory": "lots"})
    pod["metadata"]["name"] = "bad"
    result = cluster.kubectl(
        "apply", "-n", managed_ns, "-f", "-", check=False, input_text=json.dumps(pod)
    )
    assert result.returncode != 0
    assert (
        'admission webhook "pods.webhook.headroom.dev" denied the request: '
        "headroom.dev/gpu-memory: not a quantity (got 'lots'" in result.stderr
    ), result.stderr
    assert cluster.kubectl("get", "pod", "bad", "-n", managed_ns, check=False).returncode != 0


def dra_pod(name: str, template: str) -> dict[str, Any]:
    pod = gpu_pod(gpus=None)
    pod["metadata"]["name"] = name
    pod["spec"]["resourceClaims"] = [{"name": "gpu", "resourceClaimTemplateName": template}]
    pod["spec"]["containers"][0]["resources"] = {"claims": [{"name": "gpu"}]}
    return pod


def test_a_pod_with_a_gpu_claim_template_is_mutated_without_gfd_affinity(
    kube: Kube, managed_ns: str
) -> None:
    # The webhook reads the template (as its own ServiceAccount) to learn that the pod asks for
    # a GPU of gpu.nvidia.com; the DRA allocator, not GPU-feature-discovery labels, finds nodes.
    template = claim_template("one-gpu")
    template["metadata"]["namespace"] = managed_ns
    kube.request("POST", TEMPLATES.format(ns=managed_ns), body=template)
    created = create(kube, managed_ns, dra_pod("dra", "one-gpu"))
    assert is_mutated(created)
    assert "affinity" not in created["spec"]
    assert "env" not in created["spec"]["containers"][0]
    with pytest.raises(ApiError) as info:
        create(kube, managed_ns, dra_pod("dra-early", "not-yet"))
    assert (
        'admission webhook "pods.webhook.headroom.dev" denied the request: '
        'spec.resourceClaims[0].resourceClaimTemplateName: ResourceClaimTemplate "not-yet" not '
        f'found in namespace "{managed_ns}"'
    ) in str(info.value), str(info.value)


@pytest.mark.parametrize(
    ("args", "allowed"),
    [
        (("get", "resourceclaims.resource.k8s.io", "-n", "ml"), True),
        (("get", "resourceclaimtemplates.resource.k8s.io", "-n", "ml"), True),
        (("list", "resourceclaims.resource.k8s.io", "-n", "ml"), False),
        (("watch", "resourceclaimtemplates.resource.k8s.io", "-A"), False),
        (("create", "resourceclaims.resource.k8s.io", "-n", "ml"), False),
        (("get", "pods", "-n", "ml"), False),
        (("get", "secrets", "-n", "ml"), False),
    ],
)
def test_the_webhook_may_only_get_claims_and_templates(
    cluster: LocalCluster, webhook_kubeconfig: Path, args: tuple[str, ...], allowed: bool
) -> None:
    result = cluster.kubectl("auth", "can-i", *args, f"--as={WEBHOOK_ACCOUNT}", check=False)
    assert (result.stdout.strip() == "yes") is allowed, result.stdout


@pytest.mark.parametrize("name", sorted(corpus()))
def test_each_mutated_corpus_pod_is_a_valid_pod(kube: Kube, managed_ns: str, name: str) -> None:
    # A server-side dry run runs the webhook and then the API server's own validation of the
    # mutated pod: that validation is the Pod schema, and nothing is stored.
    pod = corpus()[name]
    created = create(kube, managed_ns, pod, dry_run=True)
    assert MUTATED_BY_ANNOTATION in created["metadata"]["annotations"]
    assert {"conditionType": "headroom.dev/gpu-ready"} in created["spec"]["readinessGates"]
    listed = kube.request("GET", PODS.format(ns=managed_ns))["items"]
    assert created["metadata"].get("name") not in [p["metadata"]["name"] for p in listed]


def test_the_manifests_are_accepted_by_the_api_server(cluster: LocalCluster) -> None:
    cluster.kubectl("create", "namespace", "headroom-system", check=False)
    built = cluster.kubectl("kustomize", str(ROOT / "manifests" / "webhook")).stdout
    result = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input_text=built)
    kinds = sorted(line.split("/")[0] for line in result.stdout.split() if "/" in line)
    assert kinds == sorted(
        [
            "serviceaccount",
            "clusterrole.rbac.authorization.k8s.io",
            "clusterrolebinding.rbac.authorization.k8s.io",
            "configmap",
            "service",
            "deployment.apps",
            "poddisruptionbudget.policy",
            "mutatingwebhookconfiguration.admissionregistration.k8s.io",
            # the certs sidecar's Secret and its access to that Secret and the configuration
            "secret",
            "role.rbac.authorization.k8s.io",
            "rolebinding.rbac.authorization.k8s.io",
            "clusterrole.rbac.authorization.k8s.io",
            "clusterrolebinding.rbac.authorization.k8s.io",
        ]
    ), result.stdout


def test_with_the_webhook_down_managed_pods_are_refused_and_others_created(
    cluster: LocalCluster, kube: Kube, namespace: str, registered: Registered, tmp_path: Path
) -> None:
    certs = registered.certs
    server = start_webhook(tmp_path, certs, registered.kubeconfig)
    register(cluster, server, certs, registered.kubeconfig)  # this test's own server, to stop
    try:
        wait_for_mutation(kube, namespace, server)
        assert server.stop() == 0
        with pytest.raises(ApiError) as info:
            create(kube, namespace, gpu_pod())
        # failurePolicy Fail: the pod is not created unmutated behind Headroom's back.
        assert "failed calling webhook" in str(info.value)
        assert "pods.webhook.headroom.dev" in str(info.value)
        # The objectSelector keeps everything that did not opt in working.
        plain = create(kube, namespace, gpu_pod(labels={"headroom.dev/managed": "false"}))
        assert plain["spec"]["schedulerName"] == "default-scheduler"
    finally:
        server.stop()
        register(cluster, registered.server, certs, registered.kubeconfig)  # the module's again
        wait_for_mutation(kube, namespace, registered.server)
