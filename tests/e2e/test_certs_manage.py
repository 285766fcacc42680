"""Self-managed webhook certificates on a real control plane: `headroom certs manage` fills an empty
Secret and the shipped MutatingWebhookConfiguration's caBundle with no other step, two replicas'
managers end with one pair, and pods keep being admitted and mutated through serving renewals and
a CA rotation (lifetimes of seconds here), with no failed admission; its ServiceAccount may touch
only its own Secret and its own webhook configuration.

The install is tests/e2e/certs_manage.yaml (the empty Secret and the RBAC, as proposed for the
chart) on top of the shipped ServiceAccount; the managers run as that account (a TokenRequest
token in a kubeconfig). The webhook runs on loopback as in test_webhook.py and is called by URL,
so its certificate names 127.0.0.1 (`--ip`). Besides every pod create, each round opens a fresh
TLS connection to the webhook trusting exactly the caBundle the configuration holds at that
moment, as an API server's new connection would: that handshake must never fail either.
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature

from certs import material as mat
from kubeapi.client import ApiError, Kube, load_api_client
from tests.e2e.test_webhook import create, is_mutated
from tests.waiting import wait_for
from tests.webhook.helpers import PROFILES_FILE, ROOT, gpu_pod
from tests.webhook.server import HEADROOM, Server, webhook_server
from tooling import shipped
from tooling.localcluster import LocalCluster
from tooling.process import Process, die_with_parent

INSTALL = Path(__file__).resolve().parent / "certs_manage.yaml"
SYSTEM = "headroom-system"
SECRET = "headroom-webhook-tls"
ACCOUNT = f"system:serviceaccount:{SYSTEM}:headroom-webhook"
CONFIGURATION = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{name}"
SECRETS = f"/api/v1/namespaces/{SYSTEM}/secrets"
# Short lifetimes that pass the command's own checks: serving pairs renewed every 20 s, the CA
# rotated 60 s after it is made (switch after 8 s of trust, old CA dropped 8 s after that).
GRACE_SECONDS = 8
QUICK = [
    *("--ca-validity=2m", "--serving-validity=40s", "--renew-before=1/2"),
    *(f"--rotation-grace={GRACE_SECONDS}s", "--resync=1s"),
]


@pytest.fixture(scope="module")
def installed(cluster: LocalCluster) -> Iterator[LocalCluster]:
    cluster.kubectl("apply", "-f", str(ROOT / "manifests" / "webhook" / "serviceaccount.yaml"))
    cluster.kubectl("apply", "-f", str(INSTALL))
    try:
        yield cluster
    finally:
        cluster.kubectl("delete", "mutatingwebhookconfiguration", "headroom-webhook", check=False)
        cluster.kubectl("delete", "-f", str(INSTALL), "--ignore-not-found", check=False)


@pytest.fixture(scope="module")
def account_kubeconfig(installed: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    token = installed.service_account_token(SYSTEM, "headroom-webhook")
    path = tmp_path_factory.mktemp("certs-account") / "kubeconfig"
    return installed.token_kubeconfig(path, token, user="headroom-webhook")


def start_manager(workdir: Path, name: str, kubeconfig: Path, *extra: str) -> Process:
    out_dir = workdir / name
    log_path = workdir / f"{name}.log"
    argv = [
        *(str(HEADROOM), "certs", "manage", f"--kubeconfig={kubeconfig}"),
        *(f"--out-dir={out_dir}", "--ip=127.0.0.1", *QUICK, *extra),
    ]
    with log_path.open("ab") as log:
        popen = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - started from the main thread
        )
    return Process(name, popen, log_path)


def register_without_ca(cluster: LocalCluster, server: Server) -> None:
    """The shipped configuration, calling `server` by URL, with no caBundle at all: as a chart
    that leaves it to the manager installs it."""
    manifest = shipped.webhook_configuration(
        base_url=f"https://127.0.0.1:{server.port}", ca_bundle=""
    )
    for hook in manifest["webhooks"]:
        del hook["clientConfig"]["caBundle"]
    allowed = shipped.FILLED_IN["webhook"]
    assert (
        shipped.differences(shipped.load(shipped.WEBHOOK_CONFIG), manifest, allowed=allowed) == []
    )
    cluster.kubectl("apply", "-f", "-", input_text=json.dumps(manifest))


def served_certificate(port: int, ca_bundle: str) -> x509.Certificate:
    """A new TLS connection trusting exactly `ca_bundle` (base64 PEM): the webhook's certificate."""
    context = ssl.create_default_context(cadata=base64.b64decode(ca_bundle).decode())
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as sock,
        context.wrap_socket(sock, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def issuer_of(cert: x509.Certificate, ca_bundle: str) -> str:
    """The fingerprint of the CA in `ca_bundle` that signed `cert`."""
    for ca in x509.load_pem_x509_certificates(base64.b64decode(ca_bundle)):
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return mat.fingerprint(ca)
    raise AssertionError("the handshake passed, so a CA in the bundle signed it")


@dataclass
class Rotations:
    """What the rounds saw: each certificate served, and each state (the CA that signed the
    served certificate, the CAs the configuration trusted) with when it was first and last seen."""

    served: list[str] = field(default_factory=list)
    states: dict[tuple[str, tuple[str, ...]], list[float]] = field(default_factory=dict)
    pods: int = 0

    def note(self, served: str, issuer: str, bundle: tuple[str, ...]) -> None:
        if not self.served or self.served[-1] != served:
            self.served.append(served)
        seen = self.states.setdefault((issuer, bundle), [time.monotonic()] * 2)
        seen[1] = time.monotonic()

    def lasted(self, state: tuple[str, tuple[str, ...]]) -> float:
        first, last = self.states.get(state, [0.0, 0.0])
        return last - first

    def done(self) -> bool:
        """A serving renewal, and a CA rotation seen in its order, each step for most of the
        grace: the new CA trusted beside the old while the old one's pair is still served, then
        its own pair served while both are trusted, then the old CA gone."""
        (first_ca, _), *_ = self.states
        for issuer, bundle in list(self.states):
            if len(bundle) != 2 or issuer != first_ca or bundle[0] != first_ca:
                continue
            new = bundle[1]
            if (new, (new,)) in self.states:
                assert self.lasted((first_ca, bundle)) >= GRACE_SECONDS / 2, self.states
                assert self.lasted((new, bundle)) >= GRACE_SECONDS / 2, self.states
                return len(self.served) >= 3
        return False


def round_of(kube: Kube, namespace: str, port: int, seen: Rotations) -> bool:
    """One pod created (it must be admitted and mutated) and one fresh handshake."""
    pod = gpu_pod()
    pod["metadata"]["name"] = f"rot-{seen.pods}"
    created = create(kube, namespace, pod)  # an ApiError here is a failed admission: the test fails
    seen.pods += 1
    assert is_mutated(created), created["metadata"]["name"]
    config = kube.request("GET", CONFIGURATION.format(name="headroom-webhook"))
    ca_bundles = {hook["clientConfig"]["caBundle"] for hook in config["webhooks"]}
    assert len(ca_bundles) == 1, "every webhook trusts the same CAs"
    ca_bundle = ca_bundles.pop()
    bundle = mat.ca_bundle_fingerprints(ca_bundle)
    assert bundle, ca_bundle
    cert = served_certificate(port, ca_bundle)  # an SSLError here: the test fails
    seen.note(mat.fingerprint(cert), issuer_of(cert, ca_bundle), bundle)
    return seen.done()


def test_managed_certificates_rotate_with_no_failed_admission(
    installed: LocalCluster,
    account_kubeconfig: Path,
    kube: Kube,
    namespace: str,
    tmp_path: Path,
) -> None:
    managers = [start_manager(tmp_path, name, account_kubeconfig) for name in ("a", "b")]
    server: Server | None = None
    try:
        out_a, out_b = tmp_path / "a", tmp_path / "b"
        wait_for(
            lambda: (out_a / "tls.crt").exists() and (out_b / "tls.crt").exists(),
            timeout_seconds=60,
            message="both managers' files",
        )
        profiles = tmp_path / "profiles.yaml"
        shutil.copyfile(PROFILES_FILE, profiles)
        server = webhook_server(tmp_path, profiles, certs=out_a, extra=["--cert-poll-seconds=1"])
        server.start()
        register_without_ca(installed, server)
        # No other step: the manager fills the caBundle, and a managed pod is mutated.
        probe = gpu_pod()
        probe["metadata"]["name"] = "probe"
        wait_for(
            lambda: is_mutated(create(kube, namespace, probe, dry_run=True)),
            timeout_seconds=60,
            message="the caBundle published",
            interval_seconds=0.2,
            ignore=(ApiError,),
        )
        seen = Rotations()
        wait_for(
            lambda: round_of(kube, namespace, server.port, seen),
            timeout_seconds=300,
            message="a serving renewal and a CA rotation",
            interval_seconds=0.2,
        )
        print(
            f"{seen.pods} pods admitted and mutated and as many fresh handshakes; "
            f"{len(seen.served)} serving certificates; (issuer, bundle) states {len(seen.states)}"
        )
        # The other replica's manager adopted the same pair; the webhook reloaded each one.
        wait_for(
            lambda: (out_a / "tls.crt").read_bytes() == (out_b / "tls.crt").read_bytes(),
            timeout_seconds=30,
            message="both replicas' files alike",
        )
        reloads = [
            line
            for line in server.log_lines("stdout") + server.log_lines("stderr")
            if line.get("msg") == "serving a new certificate"
        ]
        assert len(reloads) >= 2, reloads
    finally:
        if server is not None:
            server.stop()
        for process in managers:
            process.stop()
    assert [process.popen.returncode for process in managers] == [0, 0], [
        process.log_tail() for process in managers
    ]


def test_once_reconciles_and_exits(account_kubeconfig: Path, tmp_path: Path) -> None:
    # After the rotation test or alone (an empty Secret; no configuration yet: exit 1 naming it).
    result = subprocess.run(
        [
            *(str(HEADROOM), "certs", "manage", "--once", f"--kubeconfig={account_kubeconfig}"),
            *(f"--out-dir={tmp_path}", "--ip=127.0.0.1", *QUICK),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    configured = result.returncode == 0
    assert configured or "MutatingWebhookConfiguration headroom-webhook not found" in result.stderr
    assert (tmp_path / "tls.crt").exists() and (
        tmp_path / "tls.key"
    ).stat().st_mode & 0o777 == 0o600


def test_another_secret_is_refused_by_the_api_server(
    installed: LocalCluster, account_kubeconfig: Path, tmp_path: Path
) -> None:
    installed.kubectl("create", "secret", "generic", "other", "-n", SYSTEM, check=False)
    result = subprocess.run(
        [
            *(str(HEADROOM), "certs", "manage", "--once", f"--kubeconfig={account_kubeconfig}"),
            *(f"--out-dir={tmp_path}", "--secret=other", *QUICK),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert 'HTTP 403: secrets "other" is forbidden' in result.stderr, result.stderr
    assert list(tmp_path.iterdir()) == []
    account = Kube(load_api_client(str(account_kubeconfig)))
    with pytest.raises(ApiError) as info:
        account.request("GET", SECRETS)
    assert info.value.status == 403


@pytest.mark.parametrize(
    ("args", "allowed"),
    [
        (("get", f"secrets/{SECRET}", "-n", SYSTEM), True),
        (("update", f"secrets/{SECRET}", "-n", SYSTEM), True),
        (("update", "mutatingwebhookconfigurations/headroom-webhook"), True),
        (("create", "secrets", "-n", SYSTEM), False),
        (("list", "secrets", "-n", SYSTEM), False),
        (("delete", f"secrets/{SECRET}", "-n", SYSTEM), False),
        (("get", "secrets/other", "-n", SYSTEM), False),
        (("get", f"secrets/{SECRET}", "-n", "default"), False),
        (("update", "mutatingwebhookconfigurations/other"), False),
        (("list", "mutatingwebhookconfigurations"), False),
        (("delete", "mutatingwebhookconfigurations/headroom-webhook"), False),
        (("update", "validatingwebhookconfigurations/headroom-webhook"), False),
    ],
)
def test_the_manager_may_touch_only_its_secret_and_its_configuration(
    installed: LocalCluster, args: tuple[str, ...], allowed: bool
) -> None:
    result = installed.kubectl("auth", "can-i", *args, f"--as={ACCOUNT}", check=False)
    assert (result.stdout.strip() == "yes") is allowed, result.stdout
