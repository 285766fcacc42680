"""What each value of charts/headroom changes in the rendering (helm template with the real
helm), and bad values refused by the chart's schema with a message naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cli.main import build_parser
from headroom import names
from tests.manifests.chart import refusal, template
from tests.manifests.render import Obj, Rendered, containers, pod_spec
from tooling.helm import HelmFailed
from webhook.profiles import parse_profiles

NS = names.SYSTEM_NAMESPACE
GKE_LABEL = "cloud.google.com/gke-accelerator"


def profiles_of(rendered: Rendered) -> str:
    configmap = rendered.find("ConfigMap", "headroom-webhook-profiles", NS)
    assert configmap is not None
    text: str = configmap["data"]["profiles.yaml"]
    return text


def workload(rendered: Rendered, kind: str, name: str, namespace: str = NS) -> Obj:
    found = rendered.find(kind, name, namespace)
    assert found is not None, f"{kind} {namespace}/{name} is not rendered"
    return found


def container(
    rendered: Rendered,
    name: str,
    container_name: str,
    *,
    namespace: str = NS,
    kind: str = "Deployment",
) -> Obj:
    pods = workload(rendered, kind, name, namespace)
    (found,) = [c for c in containers(pods) if c["name"] == container_name]
    return found


def test_the_default_platform_uses_gpu_feature_discovery_labels() -> None:
    rendered = template()
    agent = pod_spec(workload(rendered, "DaemonSet", "headroom-nodeagent"))
    assert agent["nodeSelector"] == {names.GPU_PRESENT_NODE_LABEL: "true"}
    assert "affinity" not in agent
    profiles = parse_profiles(profiles_of(rendered))
    for profile in profiles.profiles.values():
        assert profile.gpu_memory_affinity is True
        assert profile.required_node_affinity == (
            {"key": names.GPU_PRESENT_NODE_LABEL, "operator": "In", "values": ["true"]},
        )


def test_gke_selects_nodes_by_the_accelerator_label_in_the_agent_and_every_profile() -> None:
    rendered = template("platform=gke")
    agent = pod_spec(workload(rendered, "DaemonSet", "headroom-nodeagent"))
    assert "nodeSelector" not in agent
    terms = agent["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms == {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": GKE_LABEL, "operator": "Exists"}]}]
    }
    profiles = parse_profiles(profiles_of(rendered))
    assert set(profiles.profiles) == {"default", "gpu-large", "shared-small"}
    for profile in profiles.profiles.values():
        # GKE nodes carry no nvidia.com/gpu.memory: asking for it would place nothing.
        assert profile.gpu_memory_affinity is False
        assert profile.required_node_affinity == ({"key": GKE_LABEL, "operator": "Exists"},)
    large = profiles.profiles["gpu-large"].preferred_node_affinity
    (expression,) = large[0]["preference"]["matchExpressions"]
    assert expression["key"] == GKE_LABEL and "nvidia-h100-80gb" in expression["values"]


def test_an_own_gpu_label_overrides_the_platform() -> None:
    rendered = template(
        "gpuNodes.labelKey=example.com/gpu", "gpuNodes.labelValue=yes", "platform=gke"
    )
    agent = pod_spec(workload(rendered, "DaemonSet", "headroom-nodeagent"))
    assert agent["nodeSelector"] == {"example.com/gpu": "yes"}
    for profile in parse_profiles(profiles_of(rendered)).profiles.values():
        assert profile.required_node_affinity == (
            {"key": "example.com/gpu", "operator": "In", "values": ["yes"]},
        )
        assert profile.gpu_memory_affinity is False  # gke's, not overridden


def test_own_profiles_replace_the_charts(tmp_path: Path) -> None:
    own = "apiVersion: headroom.dev/v1alpha1\nkind: WebhookProfiles\nprofiles:\n  default: {}\n"
    (tmp_path / "profiles.yaml").write_text(own)
    rendered = template(files=[f"webhook.profiles={tmp_path / 'profiles.yaml'}"])
    assert profiles_of(rendered) == own
    assert set(parse_profiles(profiles_of(rendered)).profiles) == {"default"}


def test_cert_manager_issues_the_secret_the_webhook_mounts_for_its_service() -> None:
    rendered = template("certificates.mode=cert-manager")
    issuers = {o["metadata"]["name"]: o for o in rendered.of_kind("Issuer")}
    certificates = {o["metadata"]["name"]: o for o in rendered.of_kind("Certificate")}
    serving = certificates["headroom-webhook"]["spec"]
    webhook = pod_spec(workload(rendered, "Deployment", "headroom-webhook"))
    secrets = {v["secret"]["secretName"] for v in webhook["volumes"] if "secret" in v}
    assert secrets == {serving["secretName"]} == {"headroom-webhook-tls"}
    (config,) = rendered.of_kind("MutatingWebhookConfiguration")
    for hook in config["webhooks"]:
        service = hook["clientConfig"]["service"]
        assert f"{service['name']}.{service['namespace']}.svc" in serving["dnsNames"]
        assert "caBundle" not in hook["clientConfig"]  # the CA injector writes it
    annotation = config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
    assert annotation == f"{NS}/headroom-webhook"
    # The chain: the serving certificate's Issuer signs with the CA certificate's Secret, and
    # that CA comes from the self-signed Issuer.
    ca_issuer = issuers[serving["issuerRef"]["name"]]["spec"]["ca"]
    (ca,) = [c["spec"] for c in certificates.values() if c["spec"].get("isCA")]
    assert ca["secretName"] == ca_issuer["secretName"]
    assert issuers[ca["issuerRef"]["name"]]["spec"] == {"selfSigned": {}}


def test_manual_certificates_render_what_the_certificate_step_completes() -> None:
    rendered = template("certificates.mode=manual")
    assert rendered.of_kind("Certificate") == rendered.of_kind("Issuer") == []
    tls = [o for o in rendered.objects if o["metadata"]["name"].startswith("headroom-webhook-")]
    assert [o for o in tls if o["kind"] in ("Secret", "Role", "ClusterRole")] == []
    (config,) = rendered.of_kind("MutatingWebhookConfiguration")
    assert "annotations" not in config["metadata"]
    assert all("caBundle" not in hook["clientConfig"] for hook in config["webhooks"])
    (deployment,) = [w for w in rendered.workloads() if w["metadata"]["name"] == "headroom-webhook"]
    (tls,) = [v for v in pod_spec(deployment)["volumes"] if v["name"] == "tls"]
    assert tls["secret"] == {"secretName": "headroom-webhook-tls"}
    assert "initContainers" not in pod_spec(deployment)


def test_self_managed_certificates_come_from_a_sidecar_with_rbac_for_its_own_objects() -> None:
    rendered = template(
        "certificates.selfManaged.servingValidity=7d", "certificates.selfManaged.renewBefore=1/4"
    )
    assert rendered.of_kind("Certificate") == rendered.of_kind("Issuer") == []
    (secret,) = [
        o
        for o in rendered.of_kind("Secret")
        if o["metadata"]["name"].startswith("headroom-webhook")
    ]
    assert (secret["metadata"]["name"], secret["type"]) == ("headroom-webhook-tls", "Opaque")
    assert "data" not in secret  # what the sidecar writes survives upgrades
    (config,) = rendered.of_kind("MutatingWebhookConfiguration")
    assert all("caBundle" not in hook["clientConfig"] for hook in config["webhooks"])
    (deployment,) = [w for w in rendered.workloads() if w["metadata"]["name"] == "headroom-webhook"]
    spec = pod_spec(deployment)
    (sidecar,) = spec["initContainers"]
    assert sidecar["restartPolicy"] == "Always" and "startupProbe" in sidecar
    assert sidecar["args"][:2] == ["certs", "manage"]
    assert {"--serving-validity=7d", "--renew-before=1/4", "--in-cluster"} <= set(sidecar["args"])
    (tls,) = [v for v in spec["volumes"] if v["name"] == "tls"]
    assert tls["emptyDir"]["medium"] == "Memory"
    # Its RBAC: get and update on its own Secret and its own webhook configuration, nothing more.
    rules = [r for kind in ("Role", "ClusterRole") for o in rendered.of_kind(kind)
             if o["metadata"]["name"] == "headroom-webhook-certs" for r in o["rules"]]  # fmt: skip
    assert rules == [
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["headroom-webhook-tls"],
         "verbs": ["get", "update"]},
        {"apiGroups": ["admissionregistration.k8s.io"],
         "resources": ["mutatingwebhookconfigurations"], "resourceNames": ["headroom-webhook"],
         "verbs": ["get", "update"]},
    ]  # fmt: skip


# Each part, and the prefixes of the names of everything it renders.
PARTS = {
    "nodeagent": ("headroom-nodeagent",),
    "webhook": ("headroom-webhook",),
    "extender": ("headroom-scheduler", "headroom-extender"),
}


def names_of(rendered: Rendered, prefixes: tuple[str, ...]) -> list[str]:
    return [
        o["metadata"]["name"]
        for o in rendered.objects
        if o["metadata"]["name"].startswith(prefixes)
    ]


@pytest.mark.parametrize("part", sorted(PARTS))
def test_a_part_disabled_renders_nothing_of_it_and_all_of_the_others(part: str) -> None:
    full, rendered = template(), template(f"{part}.enabled=false")
    assert names_of(full, PARTS[part]), f"{part}: the defaults render nothing of it"
    assert names_of(rendered, PARTS[part]) == []
    others = tuple(p for name, prefixes in PARTS.items() if name != part for p in prefixes)
    assert names_of(rendered, others) == names_of(full, others)
    assert len(rendered.of_kind("CustomResourceDefinition")) == 2


def test_the_crds_can_be_left_out_or_kept_on_uninstall() -> None:
    assert template("crds.install=false").of_kind("CustomResourceDefinition") == []
    kept = template("crds.keep=true").of_kind("CustomResourceDefinition")
    assert len(kept) == 2
    for crd in kept:
        assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    for crd in template().of_kind("CustomResourceDefinition"):
        assert "annotations" not in crd["metadata"]


def test_the_failure_policy_applies_to_both_webhooks() -> None:
    (config,) = template("webhook.failurePolicy=Ignore").of_kind("MutatingWebhookConfiguration")
    assert [h["failurePolicy"] for h in config["webhooks"]] == ["Ignore", "Ignore"]


@pytest.mark.parametrize(
    ("kube", "expected"),
    [("1.34.4", "v1.34.4"), ("v1.33.5-gke.1000", "v1.33.5"), ("1.37.2", "v1.37.2")],
)
def test_the_scheduler_image_follows_the_cluster(kube: str, expected: str) -> None:
    rendered = template(kube=kube)
    image = container(rendered, "headroom-scheduler", "kube-scheduler")["image"]
    assert image == f"registry.k8s.io/kube-scheduler:{expected}"
    pinned = template("scheduler.image.tag=v1.30.1", kube=kube)
    image = container(pinned, "headroom-scheduler", "kube-scheduler")["image"]
    assert image == "registry.k8s.io/kube-scheduler:v1.30.1"


def test_a_cluster_older_than_the_chart_supports_is_refused() -> None:
    with pytest.raises(HelmFailed, match=r"requires kubeVersion: >=1\.32\.0-0 .* v1\.31\.4"):
        template(kube="1.31.4")


def test_images_and_resources_come_from_the_values() -> None:
    rendered = template(
        "image.repository=registry.example.com/headroom",
        "image.tag=0.2.0",
        "image.pullPolicy=Always",
        "webhook.resources.limits.memory=1Gi",
    )
    ours = [c for w in rendered.workloads() for c in containers(w) if c["name"] != "kube-scheduler"]
    assert len(ours) == 4  # the node agent, the extender, the webhook and its certs sidecar
    for c in ours:
        assert (c["image"], c["imagePullPolicy"]) == (
            "registry.example.com/headroom:0.2.0",
            "Always",
        )
    webhook = container(rendered, "headroom-webhook", "webhook")
    assert webhook["resources"]["limits"] == {"memory": "1Gi"}


def test_the_extender_flags_reach_its_command_line_and_parse() -> None:
    rendered = template(
        "extender.flags.policy=spread",
        "extender.flags.prometheus-url=http://prometheus.monitoring:9090",
        "extender.flags.staleness-seconds=45",
        "extender.port=9999",
    )
    extender = container(rendered, "headroom-scheduler", "extender")
    args = build_parser().parse_args(extender["args"])
    assert (args.policy, args.prometheus_url) == ("spread", "http://prometheus.monitoring:9090")
    assert (args.staleness_seconds, args.bind) == (45.0, "127.0.0.1:9999")
    configmap = rendered.find("ConfigMap", "headroom-scheduler-config", NS)
    assert configmap is not None
    (config_text,) = configmap["data"].values()
    assert yaml.safe_load(config_text)["extenders"][0]["urlPrefix"] == "http://127.0.0.1:9999"


def test_another_namespace_is_used_everywhere_the_namespace_is_named() -> None:
    rendered = template(namespace="gpu-infra")
    text = yaml.safe_dump_all(rendered.objects)
    assert NS not in text
    extender = container(rendered, "headroom-scheduler", "extender", namespace="gpu-infra")
    assert "--leader-lease=gpu-infra/headroom-scheduler" in extender["args"]
    policies = rendered.of_kind("ValidatingAdmissionPolicy")
    assert len(policies) == 2
    for policy in policies:
        expression = policy["spec"]["matchConditions"][0]["expression"]
        assert "system:serviceaccount:gpu-infra:headroom-nodeagent" in expression


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("webhok.enabled=false", "at '': additional properties 'webhok' not allowed"),
        ("webhook.replicas=two", "at '/webhook/replicas': got string, want integer"),
        ("webhook.failurePolicy=Sometimes", "at '/webhook/failurePolicy': value must be one of"),
        ("platform=aks", "at '/platform': value must be one of 'generic', 'gke'"),
        ("certificates.mode=vault", "at '/certificates/mode': value must be one of"),
        (
            "certificates.selfManaged.servingValidity=soon",
            "at '/certificates/selfManaged/servingValidity'",
        ),
        ("certificates.selfManaged.renewBefore=half", "at '/certificates/selfManaged/renewBefore'"),
        (
            "certificates.selfManaged.rotationGrace=1w",
            "at '/certificates/selfManaged/rotationGrace'",
        ),
        (
            "certificates.selfManaged.resources.limits.memory=lots",
            "at '/certificates/selfManaged/resources/limits/memory'",
        ),
        (
            "certificates.selfManged.resync=1m",
            "at '/certificates': additional properties 'selfManged'",
        ),
        ("extender.flags.polcy=spread", "at '/extender/flags': additional properties 'polcy'"),
        ("extender.flags.bind=0.0.0.0:80", "at '/extender/flags': additional properties 'bind'"),
        ("extender.flags.policy=pack", "at '/extender/flags/policy': value must be one of"),
        ("nodeagent.enabled=yes", "at '/nodeagent/enabled': got string, want boolean"),
        ("scheduler.image.tag=1.31", "at '/scheduler/image/tag'"),
        ("gpuNodes.labelKey=not a label", "at '/gpuNodes/labelKey'"),
        ("webhook.resources.limits.memory=lots", "at '/webhook/resources/limits/memory'"),
        ("gpuNodes.labelValue=yes", "gpuNodes.labelValue: set gpuNodes.labelKey too"),
    ],
)
def test_a_bad_value_is_refused_naming_it(value: str, message: str) -> None:
    assert message in refusal(value)
