"""A cluster for the CLI's tests: the objects `kubectl headroom` lists, served by `FakeKube` on
the paths `cli.api` names, each pod also by name; and the extender's own HTTP verbs over the same
objects, to compare `why` with what the extender answers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask.testing import FlaskClient

from cli import api
from cli.cluster import Cluster
from extender.app import Runtime, create_app
from extender.dracache import DraCache
from extender.dracheck import DraGate
from extender.leader import Leadership
from extender.verbs import Settings
from extender.view import ClusterView
from kubeapi.cache import WatchCache, WatchEvent
from tests.extender.builders import NOW
from tests.kubeapi.fake import FakeKube

Obj = dict[str, Any]


def items(objs: Sequence[Obj]) -> Obj:
    return {"items": list(objs)}


def fake_kube(
    *,
    gpunodes: Sequence[Obj] = (),
    nodes: Sequence[Obj] = (),
    pods: Sequence[Obj] = (),
    claims: Sequence[Obj] = (),
    slices: Sequence[Obj] = (),
    templates: Sequence[Obj] = (),
    rules: Sequence[Obj] = (),
    aiscalers: Sequence[Obj] = (),
    namespaces: Sequence[Obj] = (),
) -> FakeKube:
    kube = (
        FakeKube()
        .on("GET", api.GPUNODES, items(gpunodes))
        .on("GET", api.NODES, items(nodes))
        .on("GET", api.PODS, items(pods))
        .on("GET", api.AISCALERS, items(aiscalers))
        .on("GET", api.RESOURCE_CLAIMS, items(claims))
        .on("GET", api.RESOURCE_SLICES, items(slices))
        .on("GET", api.RESOURCE_CLAIM_TEMPLATES, items(templates))
        .on("GET", api.DEVICE_TAINT_RULES, items(rules))
    )
    for pod in pods:
        meta = pod["metadata"]
        kube.on("GET", api.pod(meta["namespace"], meta["name"]), pod)
    for namespace in namespaces:
        kube.on("GET", api.namespace(namespace["metadata"]["name"]), namespace)
    return kube


def cluster(kube: FakeKube, *, namespace: str = "ml") -> Cluster:
    return Cluster(
        kube,
        server_url="https://203.0.113.7:6443",
        context="test",
        namespace=namespace,
        connect_timeout_seconds=5,
        timeout_seconds=10,
    )


class _Synced:
    synced = True


def extender_client(kube: FakeKube, *, settings: Settings) -> FlaskClient:
    """The extender's Flask app over a view fed, as its watch caches feed it, with what `kube`
    lists: what its /filter and /prioritize answer for these objects."""

    def listed(path: str) -> list[Obj]:
        found: list[Obj] = kube.request("GET", path)["items"]
        return found

    dra = DraCache()
    for path, apply in (
        (api.RESOURCE_SLICES, dra.apply_slice),
        (api.RESOURCE_CLAIMS, dra.apply_claim),
        (api.RESOURCE_CLAIM_TEMPLATES, dra.apply_template),
        (api.DEVICE_TAINT_RULES, dra.apply_rule),
    ):
        for obj in listed(path):
            apply(WatchEvent("ADDED", obj))
    view = ClusterView(dra=dra)
    view.load(gpunodes=listed(api.GPUNODES), nodes=listed(api.NODES), pods=listed(api.PODS))
    leadership = Leadership(None, lease=None, identity="test")
    leadership._leading = True
    caches: list[WatchCache] = [_Synced()]  # type: ignore[list-item]
    runtime = Runtime(
        view=view,
        settings=settings,
        leadership=leadership,
        dra_gate=DraGate(view, settings=settings, clock=lambda: NOW),
        caches=caches,
        clock=lambda: NOW,
    )
    app = create_app(runtime=runtime)
    app.testing = True
    return app.test_client()
