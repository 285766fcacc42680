"""Writing a service's TLS material to a directory: CA, serving certificate, Secret, caBundle.

`generate` owns the file rules: it never overwrites without being asked (`force` regenerates
everything, `reuse_ca` keeps the CA and reissues the rest), writes every file atomically
(`certs.files`: a temp file in the same directory, then `os.replace`), and gives private keys (and
the Secret, which holds one) mode 0600. Input errors name the command-line flag they came from;
`check_names` is the same check for `headroom certs manage`.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography import x509

from certs import pki
from certs.files import PRIVATE_MODE, PUBLIC_MODE
from certs.files import write_atomic as _write

CA_CERT = "ca.crt"
CA_KEY = "ca.key"
TLS_CERT = "tls.crt"
TLS_KEY = "tls.key"
MANIFEST_FILE = "secret.yaml"
CA_BUNDLE = "cabundle.txt"
OUTPUT_FILES = (CA_CERT, CA_KEY, TLS_CERT, TLS_KEY, MANIFEST_FILE, CA_BUNDLE)

CA_COMMON_NAME = "headroom-ca"
CA_VALID_DAYS = 3650

_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_LABEL_FORM = (
    "a DNS-1123 label: lowercase letters, digits and '-', starting and ending with a letter "
    "or digit, at most 63 characters"
)


class CertsError(Exception):
    """A request `generate` refuses, with a message meant for the person who ran the command."""


@dataclass(frozen=True)
class GeneratedFiles:
    """Where `generate` put things; `reused_ca` means ca.crt and ca.key were left untouched."""

    ca_cert: Path
    ca_key: Path
    tls_cert: Path
    tls_key: Path
    secret: Path
    ca_bundle: Path
    reused_ca: bool

    def written(self) -> list[Path]:
        """The files this run wrote, in the order they were written."""
        ca = [] if self.reused_ca else [self.ca_key, self.ca_cert]
        return [*ca, self.tls_key, self.tls_cert, self.secret, self.ca_bundle]


def generate(
    out_dir: Path,
    *,
    service: str,
    namespace: str,
    ip_addresses: Sequence[str] = (),
    force: bool = False,
    reuse_ca: bool = False,
    secret_name: str | None = None,
    valid_days: int = 365,
) -> GeneratedFiles:
    """Write a CA (or reuse the one in `out_dir`), a serving certificate for the Service
    `service` in `namespace`, a `kubernetes.io/tls` Secret manifest and the webhook caBundle."""
    name = secret_name if secret_name is not None else f"{service}-tls"
    check_names(service=service, namespace=namespace, ips=ip_addresses, secret_name=name)
    _validate_options(force=force, reuse_ca=reuse_ca, valid_days=valid_days)
    files = _paths(out_dir, reused_ca=reuse_ca)
    ca = _load_ca(out_dir) if reuse_ca else None
    if not reuse_ca and not force:
        _refuse_existing(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if ca is None:
        ca = _write_new_ca(files, valid_days=valid_days)
    serving = pki.issue_serving_cert(
        ca,
        common_name=_serving_common_name(service, namespace),
        dns_names=pki.service_dns_names(service, namespace),
        ip_addresses=ip_addresses,
        valid_days=valid_days,
    )
    _write_serving(files, ca, serving, secret_name=name, namespace=namespace)
    return files


def tls_secret_yaml(*, name: str, namespace: str, serving: pki.KeyPair, ca_pem: bytes) -> bytes:
    """A `kubernetes.io/tls` Secret manifest holding the serving pair and the CA certificate."""
    manifest = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "kubernetes.io/tls",
        "data": {
            "tls.crt": _b64(serving.cert_pem),
            "tls.key": _b64(serving.key_pem),
            "ca.crt": _b64(ca_pem),
        },
    }
    return yaml.safe_dump(manifest, sort_keys=False).encode()


def _write_new_ca(files: GeneratedFiles, *, valid_days: int) -> pki.KeyPair:
    ca = pki.new_ca(CA_COMMON_NAME, valid_days=max(CA_VALID_DAYS, valid_days))
    _write(files.ca_key, ca.key_pem, mode=PRIVATE_MODE)
    _write(files.ca_cert, ca.cert_pem, mode=PUBLIC_MODE)
    return ca


def _write_serving(
    files: GeneratedFiles,
    ca: pki.KeyPair,
    serving: pki.KeyPair,
    *,
    secret_name: str,
    namespace: str,
) -> None:
    _write(files.tls_key, serving.key_pem, mode=PRIVATE_MODE)
    _write(files.tls_cert, serving.cert_pem, mode=PUBLIC_MODE)
    secret = tls_secret_yaml(
        name=secret_name, namespace=namespace, serving=serving, ca_pem=ca.cert_pem
    )
    _write(files.secret, secret, mode=PRIVATE_MODE)
    _write(files.ca_bundle, _b64(ca.cert_pem).encode() + b"\n", mode=PUBLIC_MODE)


def check_names(
    *,
    service: str,
    namespace: str,
    ips: Sequence[str],
    secret_name: str,
    secret_flag: str = "--secret-name",  # noqa: S107 - a flag, no password
) -> None:
    """CertsError naming the flag when a Service, namespace, IP or Secret name is malformed."""
    for flag, value in (("--service", service), ("--namespace", namespace)):
        if len(value) > 63 or not _DNS1123_LABEL.fullmatch(value):
            raise CertsError(f"{flag} {value!r} is not {_LABEL_FORM}")
    for ip in ips:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            message = f"--ip {ip!r} is not an IPv4 or IPv6 address (e.g. 10.0.0.1 or fd00::1)"
            raise CertsError(message) from None
    check_subdomain(secret_name, flag=secret_flag)


def check_subdomain(name: str, *, flag: str) -> None:
    """CertsError naming `flag` unless `name` is a DNS-1123 subdomain (an object's name)."""
    labels = name.split(".")
    if len(name) > 253 or not all(_DNS1123_LABEL.fullmatch(label) for label in labels):
        raise CertsError(
            f"{flag} {name!r} is not a DNS-1123 subdomain: dot-separated "
            "lowercase letters, digits and '-', at most 253 characters"
        )


def _validate_options(*, force: bool, reuse_ca: bool, valid_days: int) -> None:
    if force and reuse_ca:
        raise CertsError(
            "--force and --reuse-ca cannot be used together: --force replaces the CA, "
            "--reuse-ca keeps it"
        )
    if valid_days < 1:
        raise CertsError(f"--days must be a whole number of days, at least 1 (got {valid_days})")


def _paths(out_dir: Path, *, reused_ca: bool) -> GeneratedFiles:
    return GeneratedFiles(
        ca_cert=out_dir / CA_CERT,
        ca_key=out_dir / CA_KEY,
        tls_cert=out_dir / TLS_CERT,
        tls_key=out_dir / TLS_KEY,
        secret=out_dir / MANIFEST_FILE,
        ca_bundle=out_dir / CA_BUNDLE,
        reused_ca=reused_ca,
    )


def _refuse_existing(out_dir: Path) -> None:
    existing = [name for name in OUTPUT_FILES if (out_dir / name).exists()]
    if existing:
        raise CertsError(
            f"refusing to overwrite existing files in {out_dir}: {', '.join(existing)}; "
            "pass --force to regenerate everything, or --reuse-ca to keep the CA and reissue "
            "the serving certificate"
        )


def _load_ca(out_dir: Path) -> pki.KeyPair:
    """The CA already in `out_dir`, checked to be a CA whose key matches its certificate."""
    missing = [name for name in (CA_CERT, CA_KEY) if not (out_dir / name).is_file()]
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise CertsError(
            f"--reuse-ca needs an existing CA in {out_dir}, but {' and '.join(missing)} "
            f"{verb} missing; run without --reuse-ca to create a new CA"
        )
    ca = pki.KeyPair(
        cert_pem=(out_dir / CA_CERT).read_bytes(), key_pem=(out_dir / CA_KEY).read_bytes()
    )
    try:
        cert, key = ca.certificate(), ca.private_key()
    except ValueError as exc:
        raise CertsError(f"--reuse-ca: cannot load the CA in {out_dir}: {exc}") from None
    if cert.public_key() != key.public_key():
        raise CertsError(f"--reuse-ca: {CA_KEY} in {out_dir} is not the key of {CA_CERT}")
    if not _is_ca(cert):
        raise CertsError(f"--reuse-ca: {out_dir / CA_CERT} is not a CA certificate")
    return ca


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _serving_common_name(service: str, namespace: str) -> str:
    """`NAME.NS.svc` when it fits the 64-character limit on a common name, else `NAME`."""
    full = f"{service}.{namespace}.svc"
    return full if len(full) <= 64 else service


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
