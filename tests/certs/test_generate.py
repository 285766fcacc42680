"""Tests for `certs.generate`: the files it writes, and when it refuses to write them."""

from __future__ import annotations

import base64
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from certs import pki
from certs.generate import OUTPUT_FILES, CertsError, GeneratedFiles, generate

SERVICE = "hr-webhook"
NAMESPACE = "headroom-system"


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "out"


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def make(out: Path, *, force: bool = False, reuse_ca: bool = False) -> GeneratedFiles:
    return generate(
        out,
        service=SERVICE,
        namespace=NAMESPACE,
        ip_addresses=["10.0.0.1"],
        force=force,
        reuse_ca=reuse_ca,
    )


def snapshot(out: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(out.iterdir())}


def openssl_verify(ca_file: Path, cert_file: Path) -> subprocess.CompletedProcess[str]:
    """Run the real `openssl verify`; a missing openssl binary fails the test."""
    command = ["openssl", "verify", "-CAfile", str(ca_file), str(cert_file)]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)


def assert_verifies(out: Path) -> None:
    result = openssl_verify(out / "ca.crt", out / "tls.crt")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{out / 'tls.crt'}: OK"


def test_writes_every_file_and_nothing_else(out: Path) -> None:
    files = make(out)
    assert sorted(path.name for path in out.iterdir()) == sorted(OUTPUT_FILES)
    assert files.written() == [
        out / "ca.key",
        out / "ca.crt",
        out / "tls.key",
        out / "tls.crt",
        out / "secret.yaml",
        out / "cabundle.txt",
    ]
    assert not files.reused_ca


def test_serving_cert_names_and_key(out: Path) -> None:
    files = make(out)
    pair = pki.KeyPair(cert_pem=files.tls_cert.read_bytes(), key_pem=files.tls_key.read_bytes())
    san = pair.certificate().extensions.get_extension_for_class(x509.SubjectAlternativeName)
    dns = san.value.get_values_for_type(x509.DNSName)
    assert {SERVICE, f"{SERVICE}.{NAMESPACE}", f"{SERVICE}.{NAMESPACE}.svc"} <= set(dns)
    assert f"{SERVICE}.{NAMESPACE}.svc.cluster.local" in dns
    assert len(dns) == 4
    assert [str(ip) for ip in san.value.get_values_for_type(x509.IPAddress)] == ["10.0.0.1"]
    assert pair.private_key().curve.name == "secp256r1"
    assert pair.certificate().public_key() == pair.private_key().public_key()


def test_openssl_verifies_serving_cert(out: Path) -> None:
    make(out)
    assert_verifies(out)


def test_key_files_are_private(out: Path, permissive_umask: None) -> None:
    make(out)
    for name in ("ca.key", "tls.key", "secret.yaml"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600, name
    assert stat.S_IMODE((out / "ca.crt").stat().st_mode) == 0o644
    for name in ("ca.key", "tls.key"):
        assert (out / name).read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\n")


def test_secret_manifest_holds_the_files(out: Path) -> None:
    make(out)
    manifest = yaml.safe_load((out / "secret.yaml").read_text())
    assert manifest["apiVersion"] == "v1"
    assert manifest["kind"] == "Secret"
    assert manifest["type"] == "kubernetes.io/tls"
    assert manifest["metadata"] == {"name": f"{SERVICE}-tls", "namespace": NAMESPACE}
    assert sorted(manifest["data"]) == ["ca.crt", "tls.crt", "tls.key"]
    for key, value in manifest["data"].items():
        assert base64.b64decode(value, validate=True) == (out / key).read_bytes(), key


def test_secret_name_can_be_chosen(out: Path) -> None:
    generate(out, service=SERVICE, namespace="ns1", secret_name="webhook.certs")
    manifest = yaml.safe_load((out / "secret.yaml").read_text())
    assert manifest["metadata"] == {"name": "webhook.certs", "namespace": "ns1"}


def test_cabundle_is_one_line_of_base64_ca(out: Path) -> None:
    make(out)
    text = (out / "cabundle.txt").read_text()
    assert text.endswith("\n")
    assert text.count("\n") == 1
    assert base64.b64decode(text.strip(), validate=True) == (out / "ca.crt").read_bytes()


def test_refuses_to_overwrite_and_changes_nothing(out: Path) -> None:
    make(out)
    before = snapshot(out)
    with pytest.raises(CertsError, match="--force") as caught:
        make(out)
    assert "--reuse-ca" in str(caught.value)
    assert "tls.key" in str(caught.value)
    assert snapshot(out) == before


def test_refuses_when_any_one_output_exists(out: Path) -> None:
    out.mkdir()
    (out / "tls.key").write_bytes(b"precious")
    with pytest.raises(CertsError, match=r"tls\.key") as caught:
        make(out)
    assert "ca.crt" not in str(caught.value)
    assert snapshot(out) == {"tls.key": b"precious"}


def test_force_regenerates_everything(out: Path) -> None:
    make(out)
    before = snapshot(out)
    make(out, force=True)
    after = snapshot(out)
    assert sorted(after) == sorted(OUTPUT_FILES)
    for name in OUTPUT_FILES:
        assert after[name] != before[name], name
    assert_verifies(out)


def test_reuse_ca_keeps_the_ca_and_reissues_the_rest(out: Path) -> None:
    make(out)
    before = snapshot(out)
    files = make(out, reuse_ca=True)
    after = snapshot(out)
    assert files.reused_ca
    assert files.written() == [
        out / "tls.key",
        out / "tls.crt",
        out / "secret.yaml",
        out / "cabundle.txt",
    ]
    assert after["ca.crt"] == before["ca.crt"]
    assert after["ca.key"] == before["ca.key"]
    assert after["tls.crt"] != before["tls.crt"]
    assert after["tls.key"] != before["tls.key"]
    assert after["cabundle.txt"] == before["cabundle.txt"]
    assert_verifies(out)


def test_reuse_ca_tightens_a_loosened_key_mode(out: Path, permissive_umask: None) -> None:
    make(out)
    (out / "tls.key").chmod(0o644)
    make(out, reuse_ca=True)
    assert stat.S_IMODE((out / "tls.key").stat().st_mode) == 0o600


def test_reuse_ca_without_a_ca_is_an_error(out: Path) -> None:
    with pytest.raises(CertsError, match="--reuse-ca needs an existing CA") as caught:
        make(out, reuse_ca=True)
    assert "ca.crt and ca.key are missing" in str(caught.value)
    assert not out.exists()


def test_reuse_ca_names_the_missing_ca_file(out: Path) -> None:
    make(out)
    (out / "ca.key").unlink()
    before = snapshot(out)
    with pytest.raises(CertsError, match=r"ca\.key is missing"):
        make(out, reuse_ca=True)
    assert snapshot(out) == before


def test_reuse_ca_rejects_a_key_that_does_not_match(out: Path) -> None:
    make(out)
    (out / "ca.key").write_bytes(pki.new_ca("other").key_pem)
    before = snapshot(out)
    with pytest.raises(CertsError, match=r"is not the key of ca\.crt"):
        make(out, reuse_ca=True)
    assert snapshot(out) == before


def test_reuse_ca_rejects_a_leaf_certificate_as_ca(out: Path) -> None:
    make(out)
    (out / "ca.crt").write_bytes((out / "tls.crt").read_bytes())
    (out / "ca.key").write_bytes((out / "tls.key").read_bytes())
    with pytest.raises(CertsError, match="is not a CA certificate"):
        make(out, reuse_ca=True)


def test_force_and_reuse_ca_together_is_an_error(out: Path) -> None:
    with pytest.raises(CertsError, match="--force and --reuse-ca"):
        make(out, force=True, reuse_ca=True)
    assert not out.exists()


@pytest.mark.parametrize(
    ("options", "flag"),
    [
        ({"service": "Bad_Name"}, "--service"),
        ({"service": "-webhook"}, "--service"),
        ({"service": "webhook-"}, "--service"),
        ({"service": "a" * 64}, "--service"),
        ({"service": ""}, "--service"),
        ({"namespace": "kube.system"}, "--namespace"),
        ({"ip_addresses": ["300.1.1.1"]}, "--ip"),
        ({"ip_addresses": ["10.0.0.1", "webhook"]}, "--ip"),
        ({"valid_days": 0}, "--days"),
        ({"valid_days": -3}, "--days"),
        ({"secret_name": "Bad!"}, "--secret-name"),
    ],
)
def test_bad_input_names_the_flag(out: Path, options: dict[str, Any], flag: str) -> None:
    arguments: dict[str, Any] = {"service": SERVICE, "namespace": NAMESPACE, **options}
    with pytest.raises(CertsError) as caught:
        generate(out, **arguments)
    assert str(caught.value).startswith(flag + " ")
    assert not out.exists()


def test_label_error_says_what_is_expected(out: Path) -> None:
    with pytest.raises(CertsError, match="DNS-1123 label") as caught:
        generate(out, service="Web", namespace=NAMESPACE)
    assert "at most 63 characters" in str(caught.value)


def test_longest_names_fit(out: Path) -> None:
    service, namespace = "s" * 63, "n" * 63
    generate(out, service=service, namespace=namespace, ip_addresses=["fd00::1"])
    cert = x509.load_pem_x509_certificate((out / "tls.crt").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == pki.service_dns_names(service, namespace)
    assert_verifies(out)


def test_existing_empty_directory_is_fine(out: Path) -> None:
    out.mkdir()
    make(out)
    assert sorted(path.name for path in out.iterdir()) == sorted(OUTPUT_FILES)
