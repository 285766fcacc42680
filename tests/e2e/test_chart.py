"""charts/headroom installed with the real helm on the real control plane: `helm install` makes
every object the chart renders, `helm upgrade` with a changed value applies it (and keeps the
caBundle the certificate step patched in), and `helm uninstall` leaves nothing of the release:
no object of any kind the chart renders, not the CRDs (templates, so they go too), not the pods
and ReplicaSets the Deployments made. `crds.keep` leaves the CRDs and the users' AIScalers.

A control plane of this module's own, not the session's: that one has the CRDs and the namespace
from manifests/ (kubectl apply), which helm refuses to adopt, and an uninstall would take the CRDs
from under the other tests. No kubelet runs, so no pod starts: `--wait=false`, and only the
objects are checked. cert-manager is not installed here; its mode is installed against stand-in
CRDs of its two kinds (no controller behind them), to show the API server takes the objects and
the uninstall removes them.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from headroom import names
from tests.waiting import wait_for
from tooling.helm import CHART, run_helm
from tooling.helm.manifests import RELEASE
from tooling.localcluster import KUBERNETES_VERSION, LocalCluster, ensure_binaries

NS = names.SYSTEM_NAMESPACE
INSTANCE = f"app.kubernetes.io/instance={RELEASE}"
# Every kind the chart renders by default; the test fails when the chart grows a new one, so
# that the uninstall check below covers it.
KINDS = {
    "CustomResourceDefinition",
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "Service",
    "Deployment",
    "DaemonSet",
    "PodDisruptionBudget",
    "MutatingWebhookConfiguration",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
}
# What the release's workloads make, which the chart does not render.
MADE_BY_CONTROLLERS = ("Pod", "ReplicaSet", "ControllerRevision")
Obj = dict[str, Any]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    ensure_binaries()
    with LocalCluster(tmp_path_factory.mktemp("chart")) as local:
        yield local


def helm(cluster: LocalCluster, *args: str) -> str:
    command = [*args, "--kubeconfig", str(cluster.kubeconfig), "--namespace", NS]
    return run_helm(command, timeout_seconds=300).stdout


def install(cluster: LocalCluster, *values: str) -> tuple[list[Obj], str]:
    """`helm install` as docs/install.md says: the objects of the release as helm recorded them, and
    what helm printed (the chart's notes)."""
    sets = [a for v in values for a in ("--set", v)]
    out = helm(cluster, "install", RELEASE, str(CHART), "--create-namespace", "--wait=false", *sets)
    return manifest(cluster), out


def manifest(cluster: LocalCluster) -> list[Obj]:
    return [d for d in yaml.safe_load_all(helm(cluster, "get", "manifest", RELEASE)) if d]


def resource(obj: Obj) -> str:
    """kubectl's name for the object's kind, qualified by its API group."""
    group = obj["apiVersion"].rpartition("/")[0]
    return (
        f"{obj['kind']}.{group}/{obj['metadata']['name']}"
        if group
        else (f"{obj['kind']}/{obj['metadata']['name']}")
    )


def live(cluster: LocalCluster, obj: Obj) -> Obj | None:
    namespace = obj["metadata"].get("namespace")
    where = ["--namespace", namespace] if namespace else []
    result = cluster.kubectl(
        "get", resource(obj), *where, "--ignore-not-found", "-o", "json", check=True
    )
    return json.loads(result.stdout) if result.stdout.strip() else None


def labelled(cluster: LocalCluster, kinds: set[str] | tuple[str, ...]) -> list[str]:
    """Objects of `kinds`, in any namespace, labelled as this release's."""
    out = cluster.kubectl("get", ",".join(sorted(kinds)), "-A", "-l", INSTANCE, "-o", "name")
    return out.stdout.split()


def gone(cluster: LocalCluster, objects: list[Obj]) -> bool:
    return all(live(cluster, o) is None for o in objects)


def test_install_upgrade_and_uninstall_leave_nothing_behind(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    objects, notes = install(cluster)
    # Self-managed certificates (the default): the notes ask for no step.
    assert "No step\nof yours" in notes and "headroom certs generate" not in notes
    assert {o["kind"] for o in objects} == KINDS
    missing = [resource(o) for o in objects if live(cluster, o) is None]
    assert missing == []
    scheduler = live(cluster, find(objects, "Deployment", "headroom-scheduler"))
    assert scheduler is not None
    images = {c["name"]: c["image"] for c in scheduler["spec"]["template"]["spec"]["containers"]}
    # The tag follows the cluster helm installed into, not the one helm was built for.
    assert images["kube-scheduler"] == f"registry.k8s.io/kube-scheduler:v{KUBERNETES_VERSION}"

    ca_bundle, secret_data = sidecar_round(cluster, tmp_path)
    helm(
        cluster, "upgrade", RELEASE, str(CHART), "--reuse-values", "--wait=false",
        "--set", "webhook.failurePolicy=Ignore",
        "--set", "webhook.replicas=3",
        "--set", "extender.flags.policy=spread",
    )  # fmt: skip
    config = live(cluster, find(objects, "MutatingWebhookConfiguration", "headroom-webhook"))
    assert config is not None
    assert [h["failurePolicy"] for h in config["webhooks"]] == ["Ignore", "Ignore"]
    assert [h["clientConfig"].get("caBundle") for h in config["webhooks"]] == [ca_bundle] * 2
    secret = live(cluster, find(objects, "Secret", "headroom-webhook-tls"))
    assert secret is not None and secret["data"] == secret_data  # the upgrade kept the pair
    webhook = live(cluster, find(objects, "Deployment", "headroom-webhook"))
    scheduler = live(cluster, find(objects, "Deployment", "headroom-scheduler"))
    assert webhook is not None and scheduler is not None
    assert webhook["spec"]["replicas"] == 3
    extender = [
        c for c in scheduler["spec"]["template"]["spec"]["containers"] if c["name"] == "extender"
    ]
    assert "--policy=spread" in extender[0]["args"]
    wait_for(
        lambda: bool(labelled(cluster, ("Pod", "ReplicaSet"))),
        timeout_seconds=60,
        message="the Deployments' ReplicaSets and pods",
    )

    helm(cluster, "uninstall", RELEASE, "--wait")
    wait_for(lambda: gone(cluster, objects), timeout_seconds=120, message="every object gone")
    wait_for(
        lambda: labelled(cluster, KINDS | set(MADE_BY_CONTROLLERS)) == [],
        timeout_seconds=120,
        message="nothing labelled as the release's",
    )
    assert helm(cluster, "list", "--all", "-q").strip() == ""


def find(objects: list[Obj], kind: str, name: str) -> Obj:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def sidecar_round(cluster: LocalCluster, tmp_path: Path) -> tuple[str, dict[str, str]]:
    """What the webhook pods' `certs` sidecar does first (no kubelet runs it here): one round of
    `headroom certs manage`, which fills the chart's empty Secret and both caBundles. Returns the
    caBundle and the Secret's data."""
    subprocess.run(
        [str(Path(sys.executable).parent / "headroom"), "certs", "manage", "--once",
         "--kubeconfig", str(cluster.kubeconfig), "--namespace", NS,
         "--out-dir", str(tmp_path / "tls")],
        check=True, timeout=120,
    )  # fmt: skip
    config = json.loads(
        cluster.kubectl(
            "get", "mutatingwebhookconfiguration", "headroom-webhook", "-o", "json"
        ).stdout
    )
    bundles = {h["clientConfig"].get("caBundle") for h in config["webhooks"]}
    (ca_bundle,) = bundles
    base64.b64decode(ca_bundle, validate=True)
    secret = json.loads(
        cluster.kubectl("get", "secret", "headroom-webhook-tls", "-n", NS, "-o", "json").stdout
    )
    assert {"tls.crt", "tls.key", "ca.crt"} <= set(secret["data"])
    return ca_bundle, secret["data"]


def test_kept_crds_and_the_users_aiscalers_outlive_an_uninstall(cluster: LocalCluster) -> None:
    objects, _ = install(cluster, "crds.keep=true", "nodeagent.enabled=false")
    crds = [o for o in objects if o["kind"] == "CustomResourceDefinition"]
    assert len(crds) == 2
    assert find(objects, "ServiceAccount", "headroom-webhook")  # the rest is installed
    cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s",
        *(f"crd/{c['metadata']['name']}" for c in crds),
    )  # fmt: skip
    seed = Path(CHART).parents[1] / "manifests" / "examples" / "seed-aiscaler.yaml"
    cluster.kubectl("apply", "-n", "default", "-f", str(seed))
    helm(cluster, "uninstall", RELEASE, "--wait")
    others = [o for o in objects if o["kind"] != "CustomResourceDefinition"]
    wait_for(lambda: gone(cluster, others), timeout_seconds=120, message="the rest gone")
    assert all(live(cluster, c) is not None for c in crds)
    assert cluster.kubectl("get", "aiscaler/llm-scaler", "-n", "default", "-o", "name").stdout
    for crd in crds:  # leave the cluster as the next test expects it
        cluster.kubectl("delete", resource(crd), "--wait=true", "--timeout=120s")


def test_cert_manager_mode_installs_issuers_and_certificates_and_removes_them(
    cluster: LocalCluster,
) -> None:
    for kind in ("Issuer", "Certificate"):
        cluster.kubectl("apply", "-f", "-", input_text=yaml.safe_dump(stand_in_crd(kind)))
    cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s",
        "crd/issuers.cert-manager.io", "crd/certificates.cert-manager.io",
    )  # fmt: skip
    objects, notes = install(cluster, "certificates.mode=cert-manager")
    assert "cert-manager issues the webhook's certificate" in notes
    assert "headroom certs generate" not in notes
    ours = [o for o in objects if o["apiVersion"] == "cert-manager.io/v1"]
    assert sorted((o["kind"], o["metadata"]["name"]) for o in ours) == [
        ("Certificate", "headroom-webhook"),
        ("Certificate", "headroom-webhook-ca"),
        ("Issuer", "headroom-selfsigned"),
        ("Issuer", "headroom-webhook-ca"),
    ]
    assert all(live(cluster, o) is not None for o in ours)
    config = live(cluster, find(objects, "MutatingWebhookConfiguration", "headroom-webhook"))
    assert config is not None
    annotations = config["metadata"]["annotations"]
    assert annotations["cert-manager.io/inject-ca-from"] == f"{NS}/headroom-webhook"
    helm(cluster, "uninstall", RELEASE, "--wait")
    wait_for(lambda: gone(cluster, objects), timeout_seconds=120, message="every object gone")


def stand_in_crd(kind: str) -> Obj:
    """A CRD for cert-manager's `kind` that takes any spec: enough for the API server to store
    the chart's objects (cert-manager's own CRDs validate them; tests/manifests checks their
    fields)."""
    plural = f"{kind.lower()}s"
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.cert-manager.io"},
        "spec": {
            "group": "cert-manager.io",
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
            },
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }
