"""Certificate building: a private CA, serving certificates and client certificates.

Everything here works on PEM bytes in memory and touches no files. Keys are ECDSA P-256, written
as unencrypted PKCS#8 PEM; certificates are signed with SHA-256. Validity starts five minutes in
the past (`CLOCK_SKEW`) so a peer whose clock is slightly behind still accepts a freshly issued
certificate; a certificate's issue time is therefore its notBefore plus `CLOCK_SKEW`. Lifetimes are
whole days (`valid_days`) or any positive `valid_for` (the self-managed mode's flags, and tests
that rotate within minutes).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CLOCK_SKEW = dt.timedelta(minutes=5)
CLUSTER_DOMAIN = "cluster.local"


@dataclass(frozen=True)
class KeyPair:
    """A PEM certificate and the PEM (PKCS#8, unencrypted) private key that goes with it."""

    cert_pem: bytes
    key_pem: bytes

    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)

    def private_key(self) -> ec.EllipticCurvePrivateKey:
        key = serialization.load_pem_private_key(self.key_pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("the private key is not an elliptic-curve key")
        return key


def service_dns_names(service: str, namespace: str) -> list[str]:
    """The names a client inside the cluster may use to reach `service` in `namespace`."""
    return [
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.{CLUSTER_DOMAIN}",
    ]


def new_ca(
    common_name: str, *, valid_days: int = 3650, valid_for: dt.timedelta | None = None
) -> KeyPair:
    """A self-signed CA that may sign leaf certificates only (path length 0); `valid_for`, when
    given, is its lifetime instead of `valid_days`."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        _validity(x509.CertificateBuilder(), _lifetime(valid_days, valid_for))
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(digital_signature=False, cert_sign=True), critical=True)
    )
    return _sign(builder, key, signing_key=key)


def issue_serving_cert(
    ca: KeyPair,
    *,
    common_name: str,
    dns_names: Sequence[str],
    ip_addresses: Sequence[str] = (),
    valid_days: int = 365,
    valid_for: dt.timedelta | None = None,
) -> KeyPair:
    """A TLS server certificate for `dns_names` and `ip_addresses`, signed by `ca`; `valid_for`,
    when given, is its lifetime instead of `valid_days`."""
    alt_names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
    alt_names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    if not alt_names:
        raise ValueError("a serving certificate needs at least one DNS name or IP address")
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    key = ec.generate_private_key(ec.SECP256R1())
    lifetime = _lifetime(valid_days, valid_for)
    builder = _leaf_builder(ca, subject, key, ExtendedKeyUsageOID.SERVER_AUTH, lifetime)
    builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    return _sign(builder, key, signing_key=ca.private_key())


def issue_client_cert(
    ca: KeyPair,
    *,
    common_name: str,
    organizations: Sequence[str] = (),
    valid_days: int = 365,
) -> KeyPair:
    """A TLS client certificate signed by `ca`; kube-apiserver reads CN as user, O as groups."""
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    key = ec.generate_private_key(ec.SECP256R1())
    purpose = ExtendedKeyUsageOID.CLIENT_AUTH
    builder = _leaf_builder(ca, x509.Name(attributes), key, purpose, _lifetime(valid_days, None))
    return _sign(builder, key, signing_key=ca.private_key())


def _leaf_builder(
    ca: KeyPair,
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    purpose: x509.ObjectIdentifier,
    lifetime: dt.timedelta,
) -> x509.CertificateBuilder:
    """A certificate for `key` issued by `ca` for one purpose; callers add alternative names."""
    ca_cert = ca.certificate()
    return (
        _validity(x509.CertificateBuilder(), lifetime)
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True, cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([purpose]), critical=False)
        .add_extension(_authority_key_id(ca), critical=False)
    )


def _authority_key_id(ca: KeyPair) -> x509.AuthorityKeyIdentifier:
    """The CA's own subject key identifier, or one derived from its key if it carries none."""
    try:
        ski = ca.certificate().extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.private_key().public_key())
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _lifetime(days: int, valid_for: dt.timedelta | None) -> dt.timedelta:
    if valid_for is not None:
        if valid_for <= dt.timedelta(0):
            raise ValueError(f"validity must be above zero, got {valid_for}")
        return valid_for
    if days < 1:
        raise ValueError(f"validity must be at least 1 day, got {days}")
    return dt.timedelta(days=days)


def _validity(builder: x509.CertificateBuilder, lifetime: dt.timedelta) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return builder.not_valid_before(now - CLOCK_SKEW).not_valid_after(now + lifetime)


def _key_usage(*, digital_signature: bool, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _sign(
    builder: x509.CertificateBuilder,
    key: ec.EllipticCurvePrivateKey,
    *,
    signing_key: ec.EllipticCurvePrivateKey,
) -> KeyPair:
    """Add the subject key identifier of `key`, sign with `signing_key`, and serialize both."""
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = builder.add_extension(ski, critical=False).sign(signing_key, hashes.SHA256())
    key_pem = key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )
    return KeyPair(cert_pem=cert.public_bytes(serialization.Encoding.PEM), key_pem=key_pem)
