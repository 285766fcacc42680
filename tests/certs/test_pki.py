"""Tests for `certs.pki`: what the certificates contain, and that openssl accepts them."""

from __future__ import annotations

import datetime as dt
import ipaddress
import subprocess
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certs import pki

ExtensionT = TypeVar("ExtensionT", bound=x509.ExtensionType)

SERVICE = "hr-webhook"
NAMESPACE = "headroom-system"


@pytest.fixture(scope="module")
def ca() -> pki.KeyPair:
    return pki.new_ca("test-ca")


@pytest.fixture(scope="module")
def serving(ca: pki.KeyPair) -> pki.KeyPair:
    return pki.issue_serving_cert(
        ca,
        common_name=f"{SERVICE}.{NAMESPACE}.svc",
        dns_names=pki.service_dns_names(SERVICE, NAMESPACE),
        ip_addresses=["10.0.0.1", "fd00::1"],
    )


@pytest.fixture(scope="module")
def client(ca: pki.KeyPair) -> pki.KeyPair:
    return pki.issue_client_cert(
        ca, common_name="admin", organizations=["system:masters", "headroom:e2e"]
    )


def openssl_verify(
    tmp_path: Path, ca: pki.KeyPair, leaf: pki.KeyPair, *options: str
) -> subprocess.CompletedProcess[str]:
    """Run the real `openssl verify`; a missing openssl binary fails the test."""
    ca_file, leaf_file = tmp_path / "ca.crt", tmp_path / "leaf.crt"
    ca_file.write_bytes(ca.cert_pem)
    leaf_file.write_bytes(leaf.cert_pem)
    command = ["openssl", "verify", "-CAfile", str(ca_file), *options, str(leaf_file)]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)


def extension(cert: x509.Certificate, kind: type[ExtensionT]) -> x509.Extension[ExtensionT]:
    return cert.extensions.get_extension_for_class(kind)


def assert_p256(pair: pki.KeyPair) -> None:
    key = pair.private_key()
    assert isinstance(key.curve, ec.SECP256R1)
    assert key.key_size == 256
    public = pair.certificate().public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert isinstance(public.curve, ec.SECP256R1)
    assert public == key.public_key()
    assert pair.key_pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")


def test_service_dns_names() -> None:
    assert pki.service_dns_names("web", "ns1") == [
        "web",
        "web.ns1",
        "web.ns1.svc",
        "web.ns1.svc.cluster.local",
    ]


def test_ca_is_a_self_signed_path_length_zero_ca(ca: pki.KeyPair) -> None:
    cert = ca.certificate()
    constraints = extension(cert, x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value.ca
    assert constraints.value.path_length == 0
    usage = extension(cert, x509.KeyUsage)
    assert usage.critical
    assert usage.value.key_cert_sign
    assert usage.value.crl_sign
    assert not usage.value.digital_signature
    ski = extension(cert, x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(ca.private_key().public_key())
    assert cert.subject == cert.issuer
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "test-ca"
    cert.verify_directly_issued_by(cert)
    assert_p256(ca)


def test_ca_validity_defaults_to_ten_years(ca: pki.KeyPair) -> None:
    cert = ca.certificate()
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime == dt.timedelta(days=3650, minutes=5)


def test_serving_cert_names(serving: pki.KeyPair) -> None:
    san = extension(serving.certificate(), x509.SubjectAlternativeName).value
    dns = san.get_values_for_type(x509.DNSName)
    assert {SERVICE, f"{SERVICE}.{NAMESPACE}", f"{SERVICE}.{NAMESPACE}.svc"} <= set(dns)
    assert dns == pki.service_dns_names(SERVICE, NAMESPACE)
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("10.0.0.1"),
        ipaddress.ip_address("fd00::1"),
    ]


def test_serving_key_is_ecdsa_p256_pkcs8(serving: pki.KeyPair) -> None:
    assert_p256(serving)


def test_serving_cert_extensions(ca: pki.KeyPair, serving: pki.KeyPair) -> None:
    cert = serving.certificate()
    assert extension(cert, x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.SERVER_AUTH]
    )
    usage = extension(cert, x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature
    assert not usage.value.key_cert_sign
    assert not extension(cert, x509.BasicConstraints).value.ca
    ca_ski = extension(ca.certificate(), x509.SubjectKeyIdentifier).value
    aki = extension(cert, x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ca_ski.digest
    assert cert.issuer == ca.certificate().subject
    cert.verify_directly_issued_by(ca.certificate())


def test_serving_cert_is_backdated_for_clock_skew(ca: pki.KeyPair) -> None:
    pair = pki.issue_serving_cert(ca, common_name="x", dns_names=["x"], valid_days=30)
    now = dt.datetime.now(dt.UTC)
    cert = pair.certificate()
    assert dt.timedelta(minutes=5) <= now - cert.not_valid_before_utc < dt.timedelta(minutes=6)
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == dt.timedelta(days=30, minutes=5)


def test_serials_are_random(ca: pki.KeyPair) -> None:
    first = pki.issue_serving_cert(ca, common_name="x", dns_names=["x"]).certificate()
    second = pki.issue_serving_cert(ca, common_name="x", dns_names=["x"]).certificate()
    assert first.serial_number != second.serial_number
    assert first.serial_number.bit_length() > 64


def test_openssl_verifies_serving_cert(
    tmp_path: Path, ca: pki.KeyPair, serving: pki.KeyPair
) -> None:
    result = openssl_verify(tmp_path, ca, serving)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(": OK")
    result = openssl_verify(tmp_path, ca, serving, "-purpose", "sslserver")
    assert result.returncode == 0, result.stderr


def test_openssl_rejects_serving_cert_for_client_use(
    tmp_path: Path, ca: pki.KeyPair, serving: pki.KeyPair
) -> None:
    result = openssl_verify(tmp_path, ca, serving, "-purpose", "sslclient")
    assert result.returncode != 0


def test_openssl_rejects_cert_from_another_ca(tmp_path: Path, serving: pki.KeyPair) -> None:
    result = openssl_verify(tmp_path, pki.new_ca("other-ca"), serving)
    assert result.returncode != 0
    assert ": OK" not in result.stdout


def test_client_cert_subject_maps_to_user_and_groups(client: pki.KeyPair) -> None:
    cert = client.certificate()
    organizations = [
        a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    ]
    assert organizations == ["system:masters", "headroom:e2e"]
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)] == ["admin"]
    assert extension(cert, x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.CLIENT_AUTH]
    )
    assert not extension(cert, x509.BasicConstraints).value.ca
    assert_p256(client)


def test_openssl_verifies_client_cert(tmp_path: Path, ca: pki.KeyPair, client: pki.KeyPair) -> None:
    result = openssl_verify(tmp_path, ca, client, "-purpose", "sslclient")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(": OK")


def test_rejects_nonpositive_validity(ca: pki.KeyPair) -> None:
    with pytest.raises(ValueError, match="at least 1 day"):
        pki.issue_serving_cert(ca, common_name="x", dns_names=["x"], valid_days=0)
    with pytest.raises(ValueError, match="at least 1 day"):
        pki.new_ca("ca", valid_days=-1)


def test_serving_cert_needs_a_name(ca: pki.KeyPair) -> None:
    with pytest.raises(ValueError, match="at least one DNS name or IP"):
        pki.issue_serving_cert(ca, common_name="x", dns_names=[])


def test_serving_cert_rejects_bad_ip(ca: pki.KeyPair) -> None:
    with pytest.raises(ValueError, match=r"300\.1\.1\.1"):
        pki.issue_serving_cert(ca, common_name="x", dns_names=["x"], ip_addresses=["300.1.1.1"])


def test_a_lifetime_may_be_any_positive_timedelta(ca: pki.KeyPair) -> None:
    short = pki.issue_serving_cert(
        ca, common_name="x", dns_names=["x"], valid_for=dt.timedelta(minutes=2)
    )
    cert = x509.load_pem_x509_certificate(short.cert_pem)
    left = cert.not_valid_after_utc - dt.datetime.now(dt.UTC)
    assert dt.timedelta(minutes=1) < left <= dt.timedelta(minutes=2)
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == pki.CLOCK_SKEW + dt.timedelta(
        minutes=2
    )
    ca_cert = pki.new_ca("short", valid_for=dt.timedelta(hours=1)).certificate()
    assert ca_cert.not_valid_after_utc - ca_cert.not_valid_before_utc == dt.timedelta(minutes=65)
    with pytest.raises(ValueError, match="validity must be above zero"):
        pki.new_ca("never", valid_for=dt.timedelta(0))
