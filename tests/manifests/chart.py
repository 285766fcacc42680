"""Rendering charts/headroom with the real helm (`make helm`), and checking what it renders.

`template()` runs `helm template` with the given values; `refusal()` runs one that must fail and
returns helm's message. `validate()` checks an object against the schemas of the newest
Kubernetes `kubernetes-validate` ships, strictly, as tests/manifests/test_render.py does for
the kustomization; cert-manager's kinds, which it has no schema for, are checked against the
fields cert-manager's v1 API defines (`CERT_MANAGER_FIELDS`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml
from kubernetes_validate import utils as kv  # type: ignore[import-untyped]

from headroom import names
from tests.manifests.render import Obj, Rendered, object_id
from tooling.helm import CHART, HelmFailed, run_helm
from tooling.helm.manifests import RELEASE, kube_version

# The spec fields of cert-manager.io/v1 Issuer and Certificate (cert-manager's API reference),
# and of the nested objects the chart writes: a field outside them would be refused.
CERT_MANAGER_FIELDS: dict[str, set[str]] = {
    "Issuer": {"selfSigned", "ca", "acme", "vault", "venafi"},
    "Issuer.ca": {"secretName", "crlDistributionPoints", "ocspServers", "issuingCertificateURLs"},
    "Certificate": {
        "secretName",
        "commonName",
        "dnsNames",
        "ipAddresses",
        "uris",
        "emailAddresses",
        "isCA",
        "duration",
        "renewBefore",
        "renewBeforePercentage",
        "privateKey",
        "usages",
        "issuerRef",
        "subject",
        "literalSubject",
        "secretTemplate",
        "keystores",
        "revisionHistoryLimit",
        "additionalOutputFormats",
        "nameConstraints",
        "otherNames",
        "encodeUsagesInRequest",
    },
    "Certificate.privateKey": {"algorithm", "size", "encoding", "rotationPolicy"},
    "Certificate.issuerRef": {"name", "kind", "group"},
}
CERT_MANAGER_API = "cert-manager.io/v1"


def template(
    *values: str,
    namespace: str = names.SYSTEM_NAMESPACE,
    kube: str | None = None,
    files: Sequence[str] = (),
) -> Rendered:
    """`helm template` of the chart with `--set` VALUES (and `--set-file` FILES), for
    Kubernetes `kube` (default: the version manifests/ is rendered for)."""
    args = ["template", RELEASE, str(CHART), "--namespace", namespace]
    args += ["--kube-version", kube or kube_version()]
    for value in values:
        args += ["--set", value]
    for file in files:
        args += ["--set-file", file]
    text = run_helm(args).stdout
    return Rendered(tuple(d for d in yaml.safe_load_all(text) if d))


def refusal(*values: str) -> str:
    """helm's message for a `helm template` with `--set` VALUES that it must refuse."""
    try:
        template(*values)
    except HelmFailed as failed:
        return failed.stderr
    raise AssertionError(f"helm template --set {' --set '.join(values)}: accepted")


def schema_version() -> str:
    version: str = kv.latest_version()
    return version


def validate(obj: Obj) -> None:
    """Fail naming the object and the field when a current cluster (or cert-manager) would
    refuse it."""
    if obj["apiVersion"] == CERT_MANAGER_API:
        check_cert_manager(obj)
        return
    try:
        kv.validate(obj, schema_version(), strict=True)
    except kv.SchemaNotFoundError as exc:
        raise AssertionError(f"{object_id(obj)}: {exc.message}") from None
    except kv.ValidationError as exc:
        where = ".".join(str(p) for p in exc.absolute_path)
        raise AssertionError(f"{object_id(obj)}: {where}: {exc.message}") from None


def check_cert_manager(obj: Obj) -> None:
    kind = obj["kind"]
    assert kind in ("Issuer", "Certificate"), f"{object_id(obj)}: a kind the chart should not make"
    assert set(obj) == {"apiVersion", "kind", "metadata", "spec"}, object_id(obj)
    spec: dict[str, Any] = obj["spec"]
    unknown = set(spec) - CERT_MANAGER_FIELDS[kind]
    assert not unknown, f"{object_id(obj)}: spec fields cert-manager does not define: {unknown}"
    for field, value in spec.items():
        allowed = CERT_MANAGER_FIELDS.get(f"{kind}.{field}")
        if allowed is not None:
            assert set(value) <= allowed, f"{object_id(obj)}: spec.{field}: {set(value) - allowed}"
