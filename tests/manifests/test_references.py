"""Everything the rendered objects point at exists: ConfigMap and Secret keys behind every
volume and every file flag, the images, the ServiceAccounts workloads run as, the roles and
accounts every binding names, and the Service behind the webhook configuration."""

from __future__ import annotations

import re
import tomllib
from pathlib import PurePosixPath
from typing import Any

import pytest
import yaml

from certs.generate import generate
from headroom import names
from tests.manifests.render import ROOT, Obj, Rendered, containers, object_id, pod_spec, render

# Secrets that `kubectl apply -k manifests/` does not create: the manual certificate step of
# docs/install.md (`headroom certs generate ... | kubectl apply -f secret.yaml`) does.
CERTIFICATE_STEP_SECRETS = {"headroom-webhook-tls"}
# Roles every cluster has (the API server's bootstrap RBAC policy).
BUILTIN_CLUSTER_ROLES = {"system:kube-scheduler", "system:volume-scheduler"}
BUILTIN_ROLES = {("kube-system", "extension-apiserver-authentication-reader")}
# The keys the token controller writes into a kubernetes.io/service-account-token Secret.
TOKEN_SECRET_KEYS = {"token", "ca.crt", "namespace"}
STOCK_IMAGE = re.compile(r"registry\.k8s\.io/kube-scheduler:v1\.\d+\.\d+")
FILE_FLAG = re.compile(r"^(?:--?[\w-]+=)?(/[^\s=]+)$")


def our_image() -> str:
    """The image docs/install.md and the Dockerfile document: headroom/headroom:<version>."""
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    return f"headroom/headroom:{version}"


@pytest.fixture(scope="module")
def rendered() -> Rendered:
    return Rendered(tuple(render()))


@pytest.fixture(scope="module")
def certificate_step_secret(tmp_path_factory: pytest.TempPathFactory) -> Obj:
    """The Secret docs/install.md's manual certificate step makes, made by the real `generate`."""
    out = tmp_path_factory.mktemp("certs")
    files = generate(out, service="headroom-webhook", namespace=names.SYSTEM_NAMESPACE)
    secret: Obj = yaml.safe_load(files.secret.read_text())
    return secret


def secret_keys(
    rendered: Rendered, certificate_step_secret: Obj, *, name: str, namespace: str
) -> set[str]:
    secret = rendered.find("Secret", name, namespace)
    if secret is None:
        assert name in CERTIFICATE_STEP_SECRETS, f"Secret {namespace}/{name} is never created"
        meta = certificate_step_secret["metadata"]
        assert (meta["name"], meta["namespace"]) == (name, namespace)
        secret = certificate_step_secret
    keys = set(secret.get("data", {})) | set(secret.get("stringData", {}))
    if secret.get("type") == "kubernetes.io/service-account-token":
        account = secret["metadata"]["annotations"]["kubernetes.io/service-account.name"]
        assert rendered.find("ServiceAccount", account, namespace), (
            f"Secret {name}: token for undefined ServiceAccount {account}"
        )
        keys |= TOKEN_SECRET_KEYS
    return keys


def configmap_keys(rendered: Rendered, *, name: str, namespace: str) -> set[str]:
    configmap = rendered.find("ConfigMap", name, namespace)
    assert configmap is not None, f"ConfigMap {namespace}/{name} is never created"
    return set(configmap.get("data", {})) | set(configmap.get("binaryData", {}))


def volume_files(
    rendered: Rendered, certificate_step_secret: Obj, *, volume: Obj, namespace: str
) -> set[str] | None:
    """The file names a volume shows in its mount directory; None for writable scratch."""
    if "emptyDir" in volume:
        return None
    if "configMap" in volume:
        source = volume["configMap"]
        keys = configmap_keys(rendered, name=source["name"], namespace=namespace)
    elif "secret" in volume:
        source = volume["secret"]
        keys = secret_keys(
            rendered, certificate_step_secret, name=source["secretName"], namespace=namespace
        )
    else:
        raise AssertionError(
            f"volume {volume['name']}: a kind this test does not know; "
            "teach it how to check its files"
        )
    items = source.get("items")
    if items is None:
        return keys
    missing = {i["key"] for i in items} - keys
    assert not missing, f"volume {volume['name']}: items name missing keys {sorted(missing)}"
    return {i["path"] for i in items}


def workload_ids() -> list[str]:
    return [object_id(w) for w in Rendered(tuple(render())).workloads()]


@pytest.mark.parametrize("workload_id", workload_ids())
def test_every_volume_and_file_flag_finds_its_file(
    rendered: Rendered, certificate_step_secret: Obj, workload_id: str
) -> None:
    (workload,) = [w for w in rendered.workloads() if object_id(w) == workload_id]
    namespace = workload["metadata"]["namespace"]
    volumes = {v["name"]: v for v in pod_spec(workload).get("volumes", [])}
    files = {
        name: volume_files(rendered, certificate_step_secret, volume=v, namespace=namespace)
        for name, v in volumes.items()
    }
    checked = 0
    for container in containers(workload):
        mounts = container.get("volumeMounts", [])
        for mount in mounts:
            assert mount["name"] in volumes, f"{container['name']}: mount of no volume {mount}"
        for word in [*container.get("command", []), *container.get("args", [])]:
            match = FILE_FLAG.match(word)
            if not match:
                continue
            path = PurePosixPath(match.group(1))
            mount = max(
                (m for m in mounts if path.is_relative_to(m["mountPath"])),
                key=lambda m: len(m["mountPath"]),
                default=None,
            )
            assert mount is not None, f"{container['name']}: {word} is in no mounted volume"
            shown = files[mount["name"]]
            if shown is not None:
                first = path.relative_to(mount["mountPath"]).parts[0]
                assert first in shown, (
                    f"{container['name']}: {word}: volume {mount['name']} "
                    f"has {sorted(shown)}, not {first}"
                )
            checked += 1
    # The file flags this test exists for: the webhook's profiles and TLS pair, its certs
    # sidecar's --out-dir, the scheduler's configuration.
    expected = {
        "Deployment headroom-system/headroom-webhook": 4,
        "Deployment headroom-system/headroom-scheduler": 1,
    }
    assert checked == expected.get(workload_id, 0)


def test_the_extender_reads_its_own_token_and_the_scheduler_its_own(
    rendered: Rendered,
    certificate_step_secret: Obj,
) -> None:
    workload = rendered.find("Deployment", "headroom-scheduler", names.SYSTEM_NAMESPACE)
    assert workload is not None
    volumes = {v["name"]: v for v in pod_spec(workload)["volumes"]}
    by_name = {c["name"]: c for c in containers(workload)}
    token_dir = "/var/run/secrets/kubernetes.io/serviceaccount"
    (mount,) = [m for m in by_name["extender"]["volumeMounts"] if m["mountPath"] == token_dir]
    secret_name = volumes[mount["name"]]["secret"]["secretName"]
    secret = rendered.find("Secret", secret_name, names.SYSTEM_NAMESPACE)
    assert secret is not None
    assert (
        secret["metadata"]["annotations"]["kubernetes.io/service-account.name"]
        == "headroom-extender"
    )
    assert secret_keys(
        rendered, certificate_step_secret, name=secret_name, namespace=names.SYSTEM_NAMESPACE
    ) >= {"token", "ca.crt"}
    assert not any(
        m["mountPath"] == token_dir for m in by_name["kube-scheduler"].get("volumeMounts", [])
    )


def test_every_image_is_ours_or_a_pinned_stock_scheduler(rendered: Rendered) -> None:
    images = {c["image"] for w in rendered.workloads() for c in containers(w)}
    assert our_image() in images
    for image in images - {our_image()}:
        assert STOCK_IMAGE.fullmatch(image), (
            f"{image}: neither {our_image()} nor a pinned registry.k8s.io/kube-scheduler:vX.Y.Z"
        )


def test_every_workload_runs_as_a_defined_service_account(rendered: Rendered) -> None:
    for workload in rendered.workloads():
        namespace = workload["metadata"]["namespace"]
        account = pod_spec(workload).get("serviceAccountName")
        assert account, f"{object_id(workload)}: runs as the namespace's default account"
        assert rendered.find("ServiceAccount", account, namespace), (
            f"{object_id(workload)}: ServiceAccount {account} is not defined"
        )


def binding_ids() -> list[str]:
    return [object_id(b) for b in render() if b["kind"] in ("RoleBinding", "ClusterRoleBinding")]


@pytest.mark.parametrize("binding_id", binding_ids())
def test_every_binding_joins_a_defined_account_and_role(
    rendered: Rendered, binding_id: str
) -> None:
    (binding,) = [b for b in rendered.objects if object_id(b) == binding_id]
    for subject in binding["subjects"]:
        assert subject["kind"] == "ServiceAccount"
        assert rendered.find("ServiceAccount", subject["name"], subject["namespace"]), (
            f"{binding_id}: no ServiceAccount {subject['namespace']}/{subject['name']}"
        )
    ref = binding["roleRef"]
    assert ref["apiGroup"] == "rbac.authorization.k8s.io"
    if ref["kind"] == "ClusterRole":
        assert rendered.find("ClusterRole", ref["name"]) or ref["name"] in BUILTIN_CLUSTER_ROLES, (
            f"{binding_id}: no ClusterRole {ref['name']}"
        )
    else:
        namespace = binding["metadata"]["namespace"]  # a RoleBinding's Role is in its namespace
        assert (
            rendered.find("Role", ref["name"], namespace)
            or (namespace, ref["name"]) in BUILTIN_ROLES
        ), f"{binding_id}: no Role {ref['name']}"


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, "only matchLabels selectors are checked here"
    return bool(selector["matchLabels"]) and selector["matchLabels"].items() <= labels.items()


def test_every_webhook_reaches_the_webhook_pods(rendered: Rendered) -> None:
    (config,) = rendered.of_kind("MutatingWebhookConfiguration")
    assert config["webhooks"]
    for webhook in config["webhooks"]:
        ref = webhook["clientConfig"]["service"]
        service = rendered.find("Service", ref["name"], ref["namespace"])
        assert service is not None, (
            f"{webhook['name']}: no Service {ref['namespace']}/{ref['name']}"
        )
        (port,) = [p for p in service["spec"]["ports"] if p["port"] == ref.get("port", 443)]
        backends = [
            w
            for w in rendered.workloads()
            if w["metadata"]["namespace"] == ref["namespace"]
            and service["spec"]["selector"].items()
            <= w["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert [object_id(w) for w in backends] == ["Deployment headroom-system/headroom-webhook"]
        named = {p["name"] for c in containers(backends[0]) for p in c.get("ports", [])}
        assert port["targetPort"] in named
    budget = rendered.find("PodDisruptionBudget", "headroom-webhook", names.SYSTEM_NAMESPACE)
    webhook_pods = rendered.find("Deployment", "headroom-webhook", names.SYSTEM_NAMESPACE)
    assert budget is not None and webhook_pods is not None
    assert selects(
        budget["spec"]["selector"], webhook_pods["spec"]["template"]["metadata"]["labels"]
    )


def test_every_workload_selects_its_own_pods_and_names_ports_it_has(rendered: Rendered) -> None:
    for workload in rendered.workloads():
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert selects(workload["spec"]["selector"], labels), object_id(workload)
        for container in containers(workload):
            ports = {p["name"] for p in container.get("ports", [])}
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                port = container.get(probe, {}).get("httpGet", {}).get("port")
                if isinstance(port, str):
                    assert port in ports, f"{object_id(workload)}: {probe} port {port}"


def test_the_scheduler_configuration_matches_the_extender_beside_it(rendered: Rendered) -> None:
    workload = rendered.find("Deployment", "headroom-scheduler", names.SYSTEM_NAMESPACE)
    assert workload is not None
    config_volume = next(v for v in pod_spec(workload)["volumes"] if "configMap" in v)
    configmap = rendered.find(
        "ConfigMap", config_volume["configMap"]["name"], names.SYSTEM_NAMESPACE
    )
    assert configmap is not None
    (config_text,) = configmap["data"].values()
    config = yaml.safe_load(config_text)
    extender = next(c for c in containers(workload) if c["name"] == "extender")
    flags = dict(a.split("=", 1) for a in extender["args"] if a.startswith("--"))
    (ext,) = config["extenders"]
    assert ext["urlPrefix"] == f"http://{flags['--bind']}"
    lease = config["leaderElection"]
    assert flags["--leader-lease"] == f"{lease['resourceNamespace']}/{lease['resourceName']}"
    assert [p["schedulerName"] for p in config["profiles"]] == [names.SCHEDULER_NAME]
