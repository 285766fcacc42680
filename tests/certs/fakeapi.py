"""A Secret and a MutatingWebhookConfiguration kept as the API server keeps them: a PUT must carry
the stored resourceVersion (else 409 Conflict) and bumps it. Built on `tests.kubeapi.fake.FakeKube`
handlers, with hooks to make a call fail or to run another writer just before a PUT."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubeapi.client import ApiError, Conflict, JsonDict, NotFound
from tests.kubeapi.fake import Call, FakeKube

NAMESPACE = "headroom-system"
SECRET = "headroom-webhook-tls"
CONFIGURATION = "headroom-webhook"
SECRET_PATH = f"/api/v1/namespaces/{NAMESPACE}/secrets/{SECRET}"
CONFIGURATION_PATH = (
    f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{CONFIGURATION}"
)


def empty_secret() -> JsonDict:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": SECRET, "namespace": NAMESPACE},
        "type": "Opaque",
    }


def configuration(webhooks: int = 2) -> JsonDict:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": CONFIGURATION},
        "webhooks": [
            {"name": f"hook{i}.headroom.dev", "clientConfig": {"url": f"https://x/{i}"}}
            for i in range(webhooks)
        ],
    }


@dataclass
class Store:
    objects: dict[str, JsonDict | None] = field(default_factory=dict)
    kube: FakeKube = field(default_factory=FakeKube)
    failure: ApiError | None = None  # every call raises it while set
    before_put: Callable[[str], object] | None = None  # called once, then cleared
    version: int = 0

    def __post_init__(self) -> None:
        for path in (SECRET_PATH, CONFIGURATION_PATH):
            self.kube.on("GET", path, self._get).on("PUT", path, self._put)

    @classmethod
    def installed(cls, *, secret: JsonDict | None = None, webhooks: int = 2) -> Store:
        store = cls()
        store.set(SECRET_PATH, secret if secret is not None else empty_secret())
        store.set(CONFIGURATION_PATH, configuration(webhooks))
        return store

    def set(self, path: str, obj: JsonDict | None) -> None:
        if obj is not None:
            self.version += 1
            obj = copy.deepcopy(obj)
            obj["metadata"]["resourceVersion"] = str(self.version)
        self.objects[path] = obj

    def get(self, path: str) -> JsonDict:
        obj = self.objects.get(path)
        assert obj is not None, path
        return obj

    def puts(self, path: str) -> int:
        return sum(1 for call in self.kube.calls if call.method == "PUT" and call.path == path)

    def _get(self, call: Call) -> JsonDict:
        if self.failure is not None:
            raise self.failure
        obj = self.objects.get(call.path)
        if obj is None:
            raise NotFound(f"{call.path} not found")
        return copy.deepcopy(obj)

    def _put(self, call: Call) -> JsonDict:
        if self.failure is not None:
            raise self.failure
        hook, self.before_put = self.before_put, None
        if hook is not None:
            hook(call.path)
        stored = self.objects.get(call.path)
        if stored is None:
            raise NotFound(f"{call.path} not found")
        body: Any = call.body
        if body["metadata"].get("resourceVersion") != stored["metadata"]["resourceVersion"]:
            raise Conflict("the object has been modified; please apply your changes again")
        self.set(call.path, body)
        return copy.deepcopy(self.get(call.path))
