"""The README's install steps agree with the manifests: the certificate step makes the Secret
the webhook pods mount, for the Service the webhook configuration calls, and patches the
caBundle of every webhook in it."""

from __future__ import annotations

import re
import shlex

from cli.main import build_parser
from headroom import names
from tests.manifests.render import ROOT, Rendered, pod_spec, render
from tests.manifests.test_references import our_image


def install_section() -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("## Install on a real cluster")
    return readme[start : readme.index("\n## ", start + 1)]


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
    rendered = Rendered(tuple(render()))
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
