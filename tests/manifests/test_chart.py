"""charts/headroom with the real helm: `helm lint --strict` passes, manifests/ is the chart
rendered (`make manifests`), `kubectl apply -k manifests/` sends what `helm install` would, and
every rendering, the defaults and each preset and option, is valid for a current Kubernetes.
What each option changes is tests/manifests/test_chart_values.py's."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import pytest
import yaml

from tests.manifests.chart import template, validate
from tests.manifests.render import Obj, Rendered, object_id, render
from tooling.helm import CHART, run_helm
from tooling.helm.manifests import FIX_COMMAND, differences, on_disk, render_files

# Each rendering the tests check: a name, and its --set values.
RENDERINGS: dict[str, tuple[str, ...]] = {
    "defaults": (),
    "gke": ("platform=gke",),
    "cert-manager": ("certificates.mode=cert-manager",),
    "gke and cert-manager": ("platform=gke", "certificates.mode=cert-manager"),
    "no node agent": ("nodeagent.enabled=false",),
    "no webhook": ("webhook.enabled=false",),
    "no extender": ("extender.enabled=false",),
    "no crds": ("crds.install=false",),
    "crds kept": ("crds.keep=true",),
    "failurePolicy Ignore": ("webhook.failurePolicy=Ignore",),
    "own gpu label": ("gpuNodes.labelKey=example.com/gpu", "gpuNodes.memoryLabel=false"),
    "extender flags": ("extender.flags.policy=spread", "extender.flags.threads=4"),
    "runtime class and tags": (
        "nodeagent.runtimeClassName=nvidia",
        "image.tag=0.2.0",
        "scheduler.image.tag=v1.36.1",
    ),
}


@pytest.mark.parametrize("name", sorted(RENDERINGS))
def test_helm_lint_strict_passes(name: str) -> None:
    sets = [a for value in RENDERINGS[name] for a in ("--set", value)]
    result = run_helm(["lint", "--strict", str(CHART), *sets], check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


def test_helm_lint_fails_on_a_bad_value() -> None:
    result = run_helm(["lint", "--strict", str(CHART), "--set", "webhook.replicas=0"], check=False)
    assert result.returncode != 0
    assert "/webhook/replicas" in result.stdout + result.stderr


def test_manifests_are_the_chart_rendered() -> None:
    diff = differences(render_files(), on_disk())
    assert not diff, f"manifests/ differs from charts/headroom:\n{diff}\nFix: {FIX_COMMAND}"


def test_the_comparison_sees_an_edit() -> None:
    """The check above can fail: an edited, a missing and an extra file are each reported."""
    expected = render_files()
    first = sorted(expected)[0]
    edited = {**expected, first: expected[first] + "# an edit\n"}
    assert "-# an edit" in differences(expected, edited)
    missing = {p: t for p, t in expected.items() if p != first}
    assert f"+++ manifests/{first} (from the chart)" in differences(expected, missing)
    extra = {**expected, first.parent / "stray.yaml": "kind: X\n"}
    assert "+++ /dev/null" in differences(expected, extra)


def test_every_rendered_file_says_it_is_generated() -> None:
    for path, text in render_files().items():
        assert text.startswith("# Generated "), path
        assert "`make manifests`" in text.split("\n", 3)[0] + text.split("\n", 3)[1], path


def normalized(obj: Obj) -> Obj:
    """An object with what kustomize does differently undone: its name hash on the scheduler's
    ConfigMap (and the volume naming it) dropped, ConfigMap data parsed (the generator input
    files carry the "generated" comment), and blank lines in strings closed up: kustomize's
    YAML reader reads a folded scalar's more-indented line (the webhooks' CEL expressions) after
    an empty line, which CEL does not see."""
    text = yaml.safe_dump(obj, sort_keys=True)
    text = re.sub(r"headroom-scheduler-config-[a-z0-9]{10}", "headroom-scheduler-config", text)
    out: Obj = _closed_up(yaml.safe_load(text))
    if out["kind"] == "ConfigMap":
        out["data"] = {k: yaml.safe_load(v) for k, v in out["data"].items()}
    return out


def _closed_up(value: Any) -> Any:
    if isinstance(value, str):
        return re.sub(r"\n\n+", "\n", value)
    if isinstance(value, dict):
        return {k: _closed_up(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_closed_up(v) for v in value]
    return value


def test_kubectl_apply_k_sends_what_helm_installs() -> None:
    kustomized = {object_id(o): o for o in map(normalized, render()) if o["kind"] != "Namespace"}
    helm = {object_id(o): o for o in map(normalized, template().objects)}
    assert sorted(kustomized) == sorted(helm)
    for key, obj in helm.items():
        assert kustomized[key] == obj, key


@pytest.fixture(scope="module", params=sorted(RENDERINGS), ids=str)
def rendering(request: pytest.FixtureRequest) -> Rendered:
    return template(*RENDERINGS[request.param])


def test_every_object_of_every_rendering_is_valid(rendering: Rendered) -> None:
    ids = Counter(object_id(o) for o in rendering.objects)
    assert [i for i, n in ids.items() if n > 1] == []
    for obj in rendering.objects:
        validate(obj)


def test_the_validation_refuses_what_a_cluster_or_cert_manager_refuses() -> None:
    objects = template("certificates.mode=cert-manager").objects
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    with pytest.raises(AssertionError, match="replica"):
        validate({**deployment, "spec": {**deployment["spec"], "replica": 2}})
    certificate = next(o for o in objects if o["kind"] == "Certificate")
    with pytest.raises(AssertionError, match="dnsName"):
        validate({**certificate, "spec": {**certificate["spec"], "dnsName": ["x"]}})
    bad_key: dict[str, Any] = {**certificate["spec"], "privateKey": {"algo": "ECDSA"}}
    with pytest.raises(AssertionError, match="algo"):
        validate({**certificate, "spec": bad_key})
