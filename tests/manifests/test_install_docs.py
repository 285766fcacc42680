"""The install page's steps (docs/install.md) agree with the manifests and the chart: the manual
certificate step makes the Secret the webhook pods mount in that mode, for the Service the webhook
configuration calls, and patches the caBundle of every webhook in it; the helm install renders,
and every value it documents is the chart's."""

from __future__ import annotations

import re
import shlex
from typing import Any

import yaml

from cli.main import build_parser
from headroom import names
from tests.manifests.chart import template
from tests.manifests.render import ROOT, Rendered, pod_spec, render
from tests.manifests.test_references import our_image
from tooling.helm import CHART
from tooling.helm.manifests import RELEASE

INSTALL_PAGE = ROOT / "docs" / "install.md"


def install_section() -> str:
    """The install page down to its first workload ("Use it"), which installs nothing."""
    page = INSTALL_PAGE.read_text()
    assert page.startswith("# Install on a real cluster\n")
    return page[: page.index("\n## Use it\n")]


def shell_lines(text: str) -> list[str]:
    """The commands of the section's ```sh blocks, continuation lines joined."""
    blocks = re.findall(r"```sh\n(.*?)```", text, flags=re.S)
    joined = "\n".join(b.replace("\\\n", " ") for b in blocks)
    return [line.strip() for line in joined.splitlines() if line.strip()]


def test_the_install_applies_the_kustomization() -> None:
    assert "kubectl apply -k manifests/" in shell_lines(install_section())


def test_the_certificate_step_matches_the_webhook() -> None:
    lines = shell_lines(install_section())
    (generate,) = [line for line in lines if line.startswith("headroom certs generate")]
    args = build_parser().parse_args(shlex.split(generate)[1:])
    rendered = template("certificates.mode=manual")  # the mode the step is for
    (config,) = rendered.of_kind("MutatingWebhookConfiguration")
    services = {
        (w["clientConfig"]["service"]["name"], w["clientConfig"]["service"]["namespace"])
        for w in config["webhooks"]
    }
    assert services == {(args.service, args.namespace)}
    assert args.namespace == names.SYSTEM_NAMESPACE
    webhook = rendered.find("Deployment", args.service, args.namespace)
    assert webhook is not None
    secrets = {v["secret"]["secretName"] for v in pod_spec(webhook)["volumes"] if "secret" in v}
    assert secrets == {args.secret_name or f"{args.service}-tls"}
    out = args.out.rstrip("/")
    assert f"kubectl apply -f {out}/secret.yaml" in lines
    assert f"$(cat {out}/cabundle.txt)" in "\n".join(lines)


def test_the_cabundle_patch_covers_every_webhook() -> None:
    section = install_section()
    patched = {int(i) for i in re.findall(r'"/webhooks/(\d+)/clientConfig/caBundle"', section)}
    (config,) = Rendered(tuple(render())).of_kind("MutatingWebhookConfiguration")
    assert patched == set(range(len(config["webhooks"])))
    assert "kubectl patch mutatingwebhookconfiguration " + config["metadata"]["name"] in section


def test_the_image_override_names_the_images_the_manifests_use() -> None:
    section = install_section()
    overridden = set(re.findall(r"\{name: ([^,]+), new", section))
    image_names = {
        c["image"].rsplit(":", 1)[0]
        for w in Rendered(tuple(render())).workloads()
        for c in pod_spec(w)["containers"]
    }
    assert overridden == image_names
    assert our_image().rsplit(":", 1)[0] in overridden


def test_the_helm_install_renders_into_the_namespace_the_certificate_step_names() -> None:
    lines = shell_lines(install_section())
    (install,) = [line for line in lines if line.startswith("helm install ")]
    words = shlex.split(install)
    assert words[2:4] == [RELEASE, "charts/headroom"]
    namespace = words[words.index("--namespace") + 1]
    assert namespace == names.SYSTEM_NAMESPACE and "--create-namespace" in words
    values = [words[i + 1] for i, word in enumerate(words) if word == "--set"]
    assert values, "the example shows how to set a value"
    rendered = template(*values, namespace=namespace)
    assert rendered.find("Deployment", "headroom-webhook", namespace) is not None


def chart_values(tree: dict[str, Any], prefix: str = "") -> set[str]:
    """Every key path of values.yaml, e.g. `webhook.failurePolicy`."""
    paths = set()
    for key, value in tree.items():
        paths.add(prefix + key)
        if isinstance(value, dict):
            paths |= chart_values(value, f"{prefix}{key}.")
    return paths


def test_every_value_the_install_section_names_is_in_the_chart() -> None:
    known = chart_values(yaml.safe_load((CHART / "values.yaml").read_text()))
    section = install_section()
    rows = section[section.index("| value | default | what |") :].split("\n\n", 1)[0]
    table = [line for line in rows.splitlines() if line.startswith("| `")]
    named = {v for row in table for v in re.findall(r"`([a-zA-Z.]+)`", row.split("|")[1])}
    assert len(named) >= 15
    assert sorted(named - known) == []
