"""The e2e fixtures: one real control plane for the whole session, stopped whatever happens.

The API server runs with the watch cache off for ConfigMaps (`--watch-cache-sizes=configmaps#0`):
their watches then go to etcd directly, so compacting etcd makes an old resourceVersion answer
410 Gone deterministically, which the watch-cache tests rely on. Everything else is stock; the
`headroom-system` namespace is made from the shipped manifest, as an install would.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubeapi.client import ApiError, Kube, load_api_client
from tests.waiting import poll
from tooling.localcluster import LocalCluster, ensure_binaries

ROOT = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    ensure_binaries()
    # The PV binder is off: the test that holds a pod in the scheduler's PreBind completes its
    # volume's binding itself, at the moment it chooses (tests/e2e/test_scheduler.py).
    local = LocalCluster(
        tmp_path_factory.mktemp("cluster"),
        apiserver_args=["--watch-cache-sizes=configmaps#0"],
        disabled_controllers=["persistentvolume-binder-controller"],
    )
    local.start()
    try:
        local.kubectl(
            "apply",
            "-f",
            str(ROOT / "manifests" / "crds"),
            "-f",
            str(ROOT / "manifests" / "namespace.yaml"),
        )
        local.kubectl(
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/gpunodes.headroom.dev",
            "crd/aiscalers.headroom.dev",
        )
        yield local
    finally:
        local.stop()


@pytest.fixture
def kube(cluster: LocalCluster) -> Kube:
    return Kube(load_api_client(str(cluster.kubeconfig)))


def _has_default_account(kube: Kube, namespace: str) -> bool:
    try:
        kube.request("GET", f"/api/v1/namespaces/{namespace}/serviceaccounts/default")
    except ApiError:
        return False
    return True


@pytest.fixture
def namespace(cluster: LocalCluster, kube: Kube) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    kube.request("POST", "/api/v1/namespaces", body={"metadata": {"name": name}})
    # ServiceAccount admission refuses pods until kube-controller-manager has made the
    # namespace's default account. After the tests that restart kube-apiserver, the controller
    # manager's work queues can back off past a minute (its requests were refused while the new
    # API server loaded RBAC): then the fixture makes the account itself, as that controller would.
    if not poll(lambda: _has_default_account(kube, name), timeout_seconds=30, interval_seconds=0.1):
        print(
            f"namespace {name}: no default ServiceAccount from kube-controller-manager "
            "after 30s; creating it"
        )
        try:
            kube.request(
                "POST",
                f"/api/v1/namespaces/{name}/serviceaccounts",
                body={"metadata": {"name": "default"}},
            )
        except ApiError as exc:
            if exc.status != 409:  # the controller made it meanwhile: as good
                raise
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
