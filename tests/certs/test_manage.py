"""Tests for `certs.manage`'s rounds and loop on a stand-in API (`tests.certs.fakeapi`): a fresh
install, two replicas racing, a Secret from `headroom certs generate`, and an API server that is
down, missing objects or refusing."""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509

from certs import material as mat
from certs.cluster import CHANGED_AT_ANNOTATION, CertsCluster, ObjectMissing
from certs.generate import generate
from certs.manage import Manager, ManageSettings
from certs.rotation import IssueServing, NewCA, Policy
from kubeapi.client import ApiError, Unreachable
from tests.certs.fakeapi import (
    CONFIGURATION,
    CONFIGURATION_PATH,
    NAMESPACE,
    SECRET,
    SECRET_PATH,
    Store,
    empty_secret,
)
from tests.waiting import wait_for

NAMES = mat.Names("headroom-webhook", NAMESPACE, ("127.0.0.1",))
POLICY = Policy(
    ca_validity=timedelta(days=365),
    serving_validity=timedelta(days=30),
    renew_before=1 / 3,
    grace=timedelta(hours=1),
)


def manager(store: Store, out_dir: Path, *, resync_seconds: float = 60.0) -> Manager:
    cluster = CertsCluster(
        store.kube, namespace=NAMESPACE, secret=SECRET, configuration=CONFIGURATION
    )
    settings = ManageSettings(
        names=NAMES,
        secret=SECRET,
        webhook_configuration=CONFIGURATION,
        out_dir=out_dir,
        policy=POLICY,
        resync=timedelta(seconds=resync_seconds),
    )
    return Manager(cluster, settings)


def secret_data(store: Store) -> dict[str, bytes]:
    data = store.get(SECRET_PATH).get("data", {})
    return {key: base64.b64decode(value) for key, value in data.items()}


def ca_bundles(store: Store) -> list[str]:
    return [
        hook["clientConfig"].get("caBundle", "")
        for hook in store.get(CONFIGURATION_PATH)["webhooks"]
    ]


def test_a_fresh_install_fills_the_secret_the_files_and_every_caBundle(tmp_path: Path) -> None:
    store = Store.installed()
    out = tmp_path / "tls"
    actions = manager(store, out).reconcile()
    assert [type(a).__name__ for a in actions] == [
        "NewCA",
        "IssueServing",
        "SaveSecret",
        "WriteFiles",
        "PublishBundle",
    ]
    data = secret_data(store)
    assert sorted(data) == ["ca.crt", "ca.key", "tls.crt", "tls.key"]
    assert {name: (out / name).read_bytes() for name in ("ca.crt", "tls.crt", "tls.key")} == {
        name: data[name] for name in ("ca.crt", "tls.crt", "tls.key")
    }
    assert not (out / "ca.key").exists()
    assert (out / "tls.key").stat().st_mode & 0o777 == 0o600
    assert ca_bundles(store) == [base64.b64encode(data["ca.crt"]).decode()] * 2
    assert CHANGED_AT_ANNOTATION in store.get(CONFIGURATION_PATH)["metadata"]["annotations"]
    # A second round has nothing to do, and writes nothing.
    puts = len(store.kube.requests("PUT"))
    assert manager(store, out).reconcile() == []
    assert len(store.kube.requests("PUT")) == puts
    # Only what the RBAC grants: get and update, on the Secret and the configuration.
    assert {f"{c.method} {c.path}" for c in store.kube.calls} == {
        f"{method} {path}"
        for method in ("GET", "PUT")
        for path in (SECRET_PATH, CONFIGURATION_PATH)
    }


def test_two_replicas_racing_at_install_end_with_one_pair(tmp_path: Path) -> None:
    store = Store.installed()
    first, second = manager(store, tmp_path / "a"), manager(store, tmp_path / "b")
    # `second` runs a whole round between `first`'s read and its write: `first` gets a Conflict,
    # reads again, and adopts the pair `second` made.
    store.before_put = lambda path: second.reconcile()
    first.reconcile()
    assert store.puts(SECRET_PATH) == 2  # second's, then first's refused one
    tls = (tmp_path / "b" / "tls.crt").read_bytes()
    assert (tmp_path / "a" / "tls.crt").read_bytes() == tls == secret_data(store)["tls.crt"]


def test_another_replicas_newer_pair_is_written_to_the_files(tmp_path: Path) -> None:
    store = Store.installed()
    mine, theirs = manager(store, tmp_path / "mine"), manager(store, tmp_path / "theirs")
    mine.reconcile()
    material = mat.parse(secret_data(store))
    renewed = mat.apply(material, [IssueServing("renewal")], policy=POLICY, names=NAMES)
    secret = store.get(SECRET_PATH)
    secret["data"] = {k: base64.b64encode(v).decode() for k, v in mat.secret_data(renewed).items()}
    store.set(SECRET_PATH, secret)
    assert [type(a).__name__ for a in mine.reconcile()] == ["WriteFiles"]
    assert (tmp_path / "mine" / "tls.crt").read_bytes() == renewed.serving.cert_pem  # type: ignore[union-attr]
    assert [type(a).__name__ for a in theirs.reconcile()] == ["WriteFiles"]


def test_a_generated_secret_is_adopted_new_ca_first(tmp_path: Path) -> None:
    made = tmp_path / "generated"
    generate(made, service=NAMES.service, namespace=NAMESPACE, ip_addresses=["127.0.0.1"])
    secret = empty_secret()
    secret["type"] = "kubernetes.io/tls"
    secret["data"] = {
        name: base64.b64encode((made / name).read_bytes()).decode()
        for name in ("ca.crt", "tls.crt", "tls.key")
    }
    store = Store.installed(secret=secret)
    actions = manager(store, tmp_path / "out").reconcile()
    assert NewCA("the Secret holds no key for the CAs it trusts") in actions
    data = secret_data(store)
    assert data["tls.crt"] == (made / "tls.crt").read_bytes()  # served on until the switch
    assert len(x509.load_pem_x509_certificates(data["ca.crt"])) == 2
    assert store.get(SECRET_PATH)["type"] == "kubernetes.io/tls"
    assert ca_bundles(store) == [base64.b64encode(data["ca.crt"]).decode()] * 2


def test_a_missing_secret_says_the_install_creates_it(tmp_path: Path) -> None:
    store = Store.installed()
    store.set(SECRET_PATH, None)
    with pytest.raises(ObjectMissing) as info:
        manager(store, tmp_path).reconcile()
    assert str(info.value) == (
        "HTTP 404: Secret headroom-system/headroom-webhook-tls not found: the install creates it "
        "(empty; this command fills it in), check --secret and --namespace"
    )


def test_a_missing_configuration_still_gets_the_files_written(tmp_path: Path) -> None:
    store = Store.installed()
    store.set(CONFIGURATION_PATH, None)
    with pytest.raises(ObjectMissing, match="MutatingWebhookConfiguration headroom-webhook not"):
        manager(store, tmp_path).reconcile()
    assert (tmp_path / "tls.crt").exists() and "tls.crt" in secret_data(store)
    store.set(CONFIGURATION_PATH, {"metadata": {"name": CONFIGURATION}, "webhooks": []})
    with pytest.raises(ObjectMissing, match="has no webhooks to trust the CA"):
        manager(store, tmp_path).reconcile()


@pytest.fixture
def loop_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.INFO, logger="certs.manage")
    yield caplog


def run_in_thread(subject: Manager) -> tuple[threading.Thread, threading.Event]:
    stop = threading.Event()
    thread = threading.Thread(target=subject.run, args=(stop,), daemon=True)
    thread.start()
    return thread, stop


def failures(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage().startswith("reconcile failed")]


def test_the_loop_outlives_a_dead_api_server_and_keeps_the_files(
    tmp_path: Path, loop_logs: pytest.LogCaptureFixture
) -> None:
    store = Store.installed()
    subject = manager(store, tmp_path, resync_seconds=0.05)
    subject.reconcile()
    served = (tmp_path / "tls.crt").read_bytes()
    store.failure = Unreachable("GET: cannot reach the API server: connection refused")
    thread, stop = run_in_thread(subject)
    try:
        wait_for(lambda: len(failures(loop_logs)) >= 3, timeout_seconds=10, message="retries")
        assert thread.is_alive()
        assert (tmp_path / "tls.crt").read_bytes() == served
        store.failure = None
        (tmp_path / "tls.crt").unlink()  # the next good round writes it again
        wait_for((tmp_path / "tls.crt").exists, timeout_seconds=10, message="recovery")
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()
    assert (tmp_path / "tls.crt").read_bytes() == served


def test_a_refusal_is_logged_with_the_rbac_it_needs(
    tmp_path: Path, loop_logs: pytest.LogCaptureFixture
) -> None:
    store = Store.installed()
    store.failure = ApiError(403, 'secrets "headroom-webhook-tls" is forbidden')
    thread, stop = run_in_thread(manager(store, tmp_path, resync_seconds=0.05))
    try:
        wait_for(lambda: bool(failures(loop_logs)), timeout_seconds=10, message="a failure")
    finally:
        stop.set()
        thread.join(5)
    fields = failures(loop_logs)[0].fields  # type: ignore[attr-defined]
    assert fields["hint"] == (
        "the ServiceAccount needs get and update on the Secret headroom-webhook-tls in "
        "headroom-system and on the MutatingWebhookConfiguration headroom-webhook"
    )
    assert not (tmp_path / "tls.crt").exists()
