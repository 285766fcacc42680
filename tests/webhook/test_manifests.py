"""manifests/webhook, read as YAML: what the issue asks of each object. (The API server accepts
them all: tests/e2e/test_webhook.py applies the kustomize build with a server-side dry run.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from cli.main import build_parser
from headroom import names
from tests.webhook.helpers import ROOT
from webhook.store import load_profiles

MANIFESTS = ROOT / "manifests" / "webhook"


def load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((MANIFESTS / name).read_text())
    return document


def test_the_kustomization_lists_every_file_and_generates_the_profiles_configmap() -> None:
    kustomization = load("kustomization.yaml")
    assert kustomization["namespace"] == names.SYSTEM_NAMESPACE
    for resource in kustomization["resources"]:
        assert (MANIFESTS / resource).is_file(), resource
    generator = kustomization["configMapGenerator"][0]
    assert generator == {"name": "headroom-webhook-profiles", "files": ["profiles.yaml"]}
    assert load_profiles(MANIFESTS / "profiles.yaml").get("default") is not None


def test_the_deployment_is_ha_unprivileged_and_runs_a_valid_command() -> None:
    deployment = load("deployment.yaml")
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    assert spec["replicas"] == 2
    anti = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert anti[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert pod["automountServiceAccountToken"] is True  # to read DRA claims, rbac.yaml
    assert pod["serviceAccountName"] == "headroom-webhook"
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = pod["containers"][0]
    assert container["image"] == "headroom/headroom:0.1.0"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    args = build_parser().parse_args(container["args"])  # the flags exist and parse
    assert args.in_cluster is True and args.kubeconfig is None
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert Path(args.profiles).parent == Path(mounts["profiles"])
    assert Path(args.certfile).parent == Path(mounts["tls"])
    assert args.bind.endswith(f":{container['ports'][0]['containerPort']}")
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["profiles"]["configMap"]["name"] == "headroom-webhook-profiles"
    # Self-managed certificates: the certs sidecar writes the pair into a memory volume it shares
    # with the webhook, from the Secret it keeps.
    assert volumes["tls"]["emptyDir"]["medium"] == "Memory"
    (sidecar,) = pod["initContainers"]
    sidecar_args = build_parser().parse_args(sidecar["args"])
    assert sidecar_args.secret == "headroom-webhook-tls"
    assert {m["name"]: m["mountPath"] for m in sidecar["volumeMounts"]}["tls"] == mounts["tls"]
    assert Path(sidecar_args.out_dir) == Path(mounts["tls"])


def test_the_service_account_mounts_no_token_in_other_pods() -> None:
    assert load("serviceaccount.yaml")["automountServiceAccountToken"] is False


def test_the_webhook_may_only_get_claims_and_claim_templates() -> None:
    role, binding = yaml.safe_load_all((MANIFESTS / "rbac.yaml").read_text())
    assert role["kind"] == "ClusterRole"
    assert role["rules"] == [
        {
            "apiGroups": ["resource.k8s.io"],
            "resources": ["resourceclaims", "resourceclaimtemplates"],
            "verbs": ["get"],
        }
    ]
    assert binding["kind"] == "ClusterRoleBinding"
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "headroom-webhook", "namespace": names.SYSTEM_NAMESPACE}
    ]


def test_the_service_and_the_pdb_select_the_webhook_pods() -> None:
    labels = load("deployment.yaml")["spec"]["template"]["metadata"]["labels"]
    service = load("service.yaml")
    assert service["metadata"]["name"] == "headroom-webhook"
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0] == {
        "name": "https",
        "port": 443,
        "targetPort": "https",
        "protocol": "TCP",
    }
    pdb = load("pdb.yaml")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_the_webhook_configuration() -> None:
    webhook = load("mutatingwebhookconfiguration.yaml")["webhooks"][0]
    assert webhook["admissionReviewVersions"] == ["v1"]
    assert webhook["sideEffects"] == "None"
    assert webhook["reinvocationPolicy"] == "IfNeeded"
    assert webhook["failurePolicy"] == "Fail"
    assert 1 <= webhook["timeoutSeconds"] <= 10
    assert webhook["clientConfig"]["service"] == {
        "name": "headroom-webhook",
        "namespace": names.SYSTEM_NAMESPACE,
        "path": "/mutate",
        "port": 443,
    }
    assert webhook["rules"] == [
        {
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "operations": ["CREATE"],
            "resources": ["pods"],
            "scope": "Namespaced",
        }
    ]
    assert webhook["objectSelector"] == {"matchLabels": {names.MANAGED_LABEL: "true"}}
    excluded = webhook["namespaceSelector"]["matchExpressions"][0]
    assert excluded["operator"] == "NotIn"
    assert set(excluded["values"]) == {"kube-system", names.SYSTEM_NAMESPACE}


def test_the_namespace_opt_in_webhook_never_meets_a_labelled_pod() -> None:
    by_pod, by_namespace = load("mutatingwebhookconfiguration.yaml")["webhooks"]
    assert by_namespace["clientConfig"]["service"]["path"] == "/mutate/namespace"
    assert by_namespace["namespaceSelector"]["matchLabels"] == {names.MANAGED_LABEL: "true"}
    # Pods carrying the label at all go to the first webhook ("true") or opt out (any other).
    assert by_namespace["objectSelector"] == {
        "matchExpressions": [{"key": names.MANAGED_LABEL, "operator": "DoesNotExist"}]
    }
    same = (
        "admissionReviewVersions",
        "sideEffects",
        "failurePolicy",
        "reinvocationPolicy",
        "timeoutSeconds",
        "rules",
    )
    assert {k: by_pod[k] for k in same} == {k: by_namespace[k] for k in same}
