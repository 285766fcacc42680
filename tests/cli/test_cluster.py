"""The CLI's reads and what their failures say: the unreachable server with its URL and the time
waited, the CRD that is not installed and how to install it, the verb and resource RBAC refused
and the rule that would allow it; and `connect` choosing the cluster as kubectl does."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli import api
from cli.cluster import CliError, Resource, connect, resource_of
from kubeapi.client import ApiError, NotFound, Unreachable
from tests.cli.fakecluster import cluster, fake_kube
from tests.kubeapi.fake import FakeKube
from tests.kubeapi.kubeconfigs import kubeconfig


@pytest.mark.parametrize(
    ("path", "resource"),
    [
        (api.PODS, Resource("", "pods", "", "")),
        (api.pod("ml", "x"), Resource("", "pods", "ml", "x")),
        (api.namespace("ml"), Resource("", "namespaces", "", "ml")),
        (api.GPUNODES, Resource("headroom.dev", "gpunodes", "", "")),
        (
            "/apis/headroom.dev/v1alpha1/namespaces/ml/aiscalers/llm",
            Resource("headroom.dev", "aiscalers", "ml", "llm"),
        ),
    ],
)
def test_a_path_is_read_as_rbac_names_it(path: str, resource: Resource) -> None:
    assert resource_of(path) == resource


def failing(path: str, error: ApiError) -> FakeKube:
    return fake_kube().on("GET", path, error)


def test_an_unreachable_cluster_names_the_server_the_waits_and_the_context() -> None:
    kube = failing(api.GPUNODES, Unreachable("GET /apis/...: cannot reach the API server: refused"))
    with pytest.raises(CliError) as info:
        cluster(kube).list(api.GPUNODES)
    assert str(info.value) == (
        "cannot reach the cluster at https://203.0.113.7:6443 (waited 5s to connect and 10s "
        "for an answer; context test): GET /apis/...: cannot reach the API server: refused"
    )


def test_missing_crds_name_the_crd_and_how_to_install_it() -> None:
    with pytest.raises(CliError) as info:
        cluster(failing(api.GPUNODES, NotFound("404 page not found"))).list(api.GPUNODES)
    message = str(info.value)
    assert message.startswith(
        "Headroom's CRDs are not installed in this cluster: the CRD gpunodes.headroom.dev"
    )
    assert "kubectl apply -f manifests/crds/" in message


def test_a_refusal_names_the_verb_the_resource_and_the_rbac_rule() -> None:
    refused = ApiError(
        403, 'gpunodes.headroom.dev is forbidden: User "u" cannot list resource "gpunodes"'
    )
    with pytest.raises(CliError) as info:
        cluster(failing(api.GPUNODES, refused)).list(api.GPUNODES)
    assert str(info.value) == (
        "no permission to read gpunodes.headroom.dev (list cluster-wide): HTTP 403: "
        'gpunodes.headroom.dev is forbidden: User "u" cannot list resource "gpunodes"; the RBAC '
        'needed: {apiGroups: ["headroom.dev"], resources: ["gpunodes"], verbs: ["list"]} in a '
        "ClusterRole bound to you"
    )
    with pytest.raises(CliError, match=r'verbs: \["get"\]\} in a Role in namespace ml'):
        cluster(failing(api.pod("ml", "x"), ApiError(403, "no"))).get(api.pod("ml", "x"))


def test_rejected_credentials_say_so() -> None:
    with pytest.raises(CliError, match="did not accept the credentials of context test"):
        cluster(failing(api.PODS, ApiError(401, "Unauthorized"))).list(api.PODS)


def test_an_optional_collection_is_empty_when_not_served_or_not_readable() -> None:
    for error in (NotFound("no"), ApiError(403, "no")):
        assert (
            cluster(failing(api.RESOURCE_CLAIMS, error)).list(api.RESOURCE_CLAIMS, optional=True)
            == []
        )
    with pytest.raises(
        CliError, match=r"list resourceclaims\.resource\.k8s\.io cluster-wide: HTTP 500"
    ):
        cluster(failing(api.RESOURCE_CLAIMS, ApiError(500, "etcd"))).list(
            api.RESOURCE_CLAIMS, optional=True
        )


def test_a_missing_object_is_left_to_the_caller() -> None:
    with pytest.raises(NotFound):
        cluster(fake_kube()).get(api.pod("ml", "ghost"))


def test_connect_takes_the_contexts_server_and_namespace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = kubeconfig(
        tmp_path / "config",
        current="a",
        contexts={"a": ("https://192.0.2.1:6443", "ml"), "b": ("https://192.0.2.2:6443", None)},
    )
    monkeypatch.setenv("KUBECONFIG", str(path))
    first = connect(None)
    assert (first.server_url, first.context, first.namespace) == (
        "https://192.0.2.1:6443",
        "a",
        "ml",
    )
    second = connect(None, context="b", timeout_seconds=2)
    assert (second.server_url, second.context, second.namespace) == (
        "https://192.0.2.2:6443",
        "b",
        "default",
    )
    assert (second.connect_timeout_seconds, second.timeout_seconds) == (2, 2)
    assert connect(str(path), namespace="other").namespace == "other"
    with pytest.raises(CliError, match="--context: no context 'c'"):
        connect(None, context="c")
