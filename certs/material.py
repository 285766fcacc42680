"""The Secret's TLS material: parsed from its data, summarised for `rotation.plan`, changed by the
plan's actions, and turned back into Secret data, out-dir files and a caBundle.

The Secret's data keys: `ca.crt` (the trust bundle: every CA the webhook configuration trusts, PEM,
oldest first), `ca.key` (the key of the signing CA, one of those), `tls.crt` and `tls.key` (the
serving pair). Whatever does not parse is left out and named in `problems`, and the plan replaces
what is missing. A Secret from `headroom certs generate` (no `ca.key`) is adopted: its CA stays
trusted until a pair from a new CA has replaced it, in the plan's order.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from certs import pki
from certs.files import PRIVATE_MODE, PUBLIC_MODE, FileContent
from certs.rotation import Action, Cert, DropCAs, IssueServing, NewCA, Policy, Serving

CA_CERT, CA_KEY, TLS_CERT, TLS_KEY = "ca.crt", "ca.key", "tls.crt", "tls.key"


@dataclass(frozen=True)
class Names:
    """What the serving certificate must name: the Service's DNS names and any IP addresses."""

    service: str
    namespace: str
    ip_addresses: tuple[str, ...] = ()

    @property
    def dns_names(self) -> list[str]:
        return pki.service_dns_names(self.service, self.namespace)


@dataclass(frozen=True)
class Material:
    bundle: tuple[x509.Certificate, ...] = ()
    signing: pki.KeyPair | None = None  # a bundle CA and its key
    serving: pki.KeyPair | None = None
    problems: tuple[str, ...] = ()


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the DER certificate, in hex."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def parse(data: Mapping[str, bytes]) -> Material:
    """The material in a Secret's (decoded) data; what does not parse is named in `problems`."""
    problems: list[str] = []
    bundle = _bundle(data.get(CA_CERT, b""), problems)
    return Material(
        bundle=bundle,
        signing=_signing(bundle, data.get(CA_KEY, b""), problems),
        serving=_serving(data.get(TLS_CERT, b""), data.get(TLS_KEY, b""), problems),
        problems=tuple(problems),
    )


def _bundle(pem: bytes, problems: list[str]) -> tuple[x509.Certificate, ...]:
    if not pem.strip():
        return ()
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        problems.append(f"{CA_CERT} does not parse as PEM certificates: {exc}")
        return ()
    kept = tuple(cert for cert in certs if _is_ca(cert))
    if len(kept) < len(certs):
        problems.append(f"{CA_CERT} holds certificates that are not CAs; they are left out")
    return kept


def _signing(
    bundle: tuple[x509.Certificate, ...], key_pem: bytes, problems: list[str]
) -> pki.KeyPair | None:
    if not key_pem.strip():
        return None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        problems.append(f"{CA_KEY} does not parse as an unencrypted PEM key: {exc}")
        return None
    for cert in bundle:
        if cert.public_key() == key.public_key():
            pair = pki.KeyPair(cert.public_bytes(serialization.Encoding.PEM), key_pem)
            try:
                pair.private_key()  # pki signs with elliptic-curve keys only
            except ValueError as exc:
                problems.append(f"{CA_KEY}: {exc}")
                return None
            return pair
    problems.append(f"{CA_KEY} is the key of no CA in {CA_CERT}")
    return None


def _serving(cert_pem: bytes, key_pem: bytes, problems: list[str]) -> pki.KeyPair | None:
    if not cert_pem.strip() and not key_pem.strip():
        return None
    try:
        cert = x509.load_pem_x509_certificates(cert_pem)[0]
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        problems.append(f"{TLS_CERT} and {TLS_KEY} do not parse as a PEM pair: {exc}")
        return None
    if cert.public_key() != key.public_key():
        problems.append(f"{TLS_KEY} is not the key of {TLS_CERT}")
        return None
    return pki.KeyPair(cert.public_bytes(serialization.Encoding.PEM), key_pem)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def summarize(
    material: Material, names: Names
) -> tuple[tuple[Cert, ...], str | None, Serving | None]:
    """The bundle, the signing CA's fingerprint and the serving pair, as `rotation.State` holds
    them."""
    bundle = tuple(_cert(ca) for ca in material.bundle)
    signing = fingerprint(material.signing.certificate()) if material.signing else None
    if material.serving is None:
        return bundle, signing, None
    cert = material.serving.certificate()
    issuer = next((fingerprint(ca) for ca in material.bundle if _signed_by(cert, ca)), None)
    serving = Serving(_cert(cert), issuer=issuer, names_match=_names_match(cert, names))
    return bundle, signing, serving


# A certificate's times are whole seconds, its notBefore rounded down: one more second keeps the
# issue time never earlier than the real one, so the grace counted from it is never cut short.
_ROUNDING = timedelta(seconds=1)


def _cert(cert: x509.Certificate) -> Cert:
    issued_at = cert.not_valid_before_utc + pki.CLOCK_SKEW + _ROUNDING
    return Cert(fingerprint(cert), issued_at=issued_at, not_after=cert.not_valid_after_utc)


def _signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _names_match(cert: x509.Certificate, names: Names) -> bool:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    dns = set(san.get_values_for_type(x509.DNSName))
    ips = set(san.get_values_for_type(x509.IPAddress))
    wanted_ips = {ipaddress.ip_address(ip) for ip in names.ip_addresses}
    return set(names.dns_names) <= dns and wanted_ips <= ips


def apply(
    material: Material, actions: Sequence[Action], *, policy: Policy, names: Names
) -> Material:
    """`material` after the plan's CA, serving and bundle actions (the others touch no data)."""
    for action in actions:
        if isinstance(action, NewCA):
            ca = pki.new_ca(_ca_name(names.service), valid_for=policy.ca_validity)
            material = replace(material, bundle=(*material.bundle, ca.certificate()), signing=ca)
        elif isinstance(action, IssueServing):
            material = replace(material, serving=_issue(material, policy, names))
        elif isinstance(action, DropCAs):
            kept = tuple(ca for ca in material.bundle if fingerprint(ca) not in action.fingerprints)
            material = replace(material, bundle=kept)
    return material


def _issue(material: Material, policy: Policy, names: Names) -> pki.KeyPair:
    if material.signing is None:
        raise ValueError("a serving pair needs a signing CA; the plan makes one first")
    # No serving certificate outlives its CA (check_policy keeps this from ever binding).
    ca_left = material.signing.certificate().not_valid_after_utc - datetime.now(UTC)
    return pki.issue_serving_cert(
        material.signing,
        common_name=_serving_name(names),
        dns_names=names.dns_names,
        ip_addresses=names.ip_addresses,
        valid_for=max(min(policy.serving_validity, ca_left), timedelta(seconds=1)),
    )


def _ca_name(service: str) -> str:
    # A CA of its own name per rotation (as the kubelet names its own, "host-ca@<time>"), so
    # a person reading the bundle tells them apart; a common name holds at most 64 characters.
    suffix = f"-ca@{int(datetime.now(UTC).timestamp())}"
    return service[: 64 - len(suffix)] + suffix


def _serving_name(names: Names) -> str:
    full = f"{names.service}.{names.namespace}.svc"
    return full if len(full) <= 64 else names.service


def bundle_pem(material: Material) -> bytes:
    return b"".join(ca.public_bytes(serialization.Encoding.PEM) for ca in material.bundle)


def secret_data(material: Material) -> dict[str, bytes]:
    """The Secret's data for `material` (the keys `parse` reads)."""
    data = {CA_CERT: bundle_pem(material)}
    if material.signing is not None:
        data[CA_KEY] = material.signing.key_pem
    if material.serving is not None:
        data[TLS_CERT], data[TLS_KEY] = material.serving.cert_pem, material.serving.key_pem
    return data


def out_files(material: Material) -> dict[str, FileContent]:
    """What the webhook reads: the bundle first, then the key, then the certificate. The CA key
    stays in the Secret: the webhook needs only the pair."""
    files = {CA_CERT: FileContent(bundle_pem(material), PUBLIC_MODE)}
    if material.serving is not None:
        files[TLS_KEY] = FileContent(material.serving.key_pem, PRIVATE_MODE)
        files[TLS_CERT] = FileContent(material.serving.cert_pem, PUBLIC_MODE)
    return files


def ca_bundle_fingerprints(ca_bundle: str) -> tuple[str, ...] | None:
    """The CAs a webhook's caBundle (base64 PEM) trusts, in order; None when it does not parse,
    () when it is empty."""
    if not ca_bundle:
        return ()
    try:
        pem = base64.b64decode(ca_bundle, validate=True)
        return tuple(fingerprint(cert) for cert in x509.load_pem_x509_certificates(pem))
    except ValueError:
        return None
