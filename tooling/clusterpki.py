"""The local control plane's certificates and kubeconfigs: its own CA, the API server's serving
pair, the admin client pair, the service-account signing key, and kubeconfigs that trust them."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from certs import pki


def write_cluster_pki(workdir: Path, *, server_url: str, kubeconfig: Path) -> None:
    """Every key and certificate the control plane needs, in `workdir` (mode 0600), and the
    admin's kubeconfig at `kubeconfig`."""
    d = workdir
    ca = pki.new_ca("headroom-local-cluster-ca")
    server = pki.issue_serving_cert(
        ca,
        common_name="kube-apiserver",
        dns_names=[
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ],
        ip_addresses=["127.0.0.1", "10.96.0.1"],
    )
    admin = pki.issue_client_cert(ca, common_name="admin", organizations=["system:masters"])
    sa_key = ec.generate_private_key(ec.SECP256R1())
    files = {
        "ca.crt": ca.cert_pem,
        "ca.key": ca.key_pem,
        "apiserver.crt": server.cert_pem,
        "apiserver.key": server.key_pem,
        "admin.crt": admin.cert_pem,
        "admin.key": admin.key_pem,
        "sa.key": sa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        "sa.pub": sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    }
    for name, data in files.items():
        (d / name).write_bytes(data)
        (d / name).chmod(0o600)
    kubeconfig.write_text(
        yaml.safe_dump(kubeconfig_for(server_url, ca.cert_pem, admin, user="admin"))
    )
    kubeconfig.chmod(0o600)


def kubeconfig_for(
    server_url: str, ca_pem: bytes, client_pair: pki.KeyPair | None, *, user: str
) -> dict[str, Any]:
    """A kubeconfig for `server_url`; the user presents `client_pair` (None: fill in later)."""

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "headroom-local",
        "clusters": [
            {
                "name": "headroom-local",
                "cluster": {"server": server_url, "certificate-authority-data": b64(ca_pem)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {}
                if client_pair is None
                else {
                    "client-certificate-data": b64(client_pair.cert_pem),
                    "client-key-data": b64(client_pair.key_pem),
                },
            }
        ],
        "contexts": [
            {"name": "headroom-local", "context": {"cluster": "headroom-local", "user": user}}
        ],
    }
