"""The certs component's one edge to the Kubernetes API: its own Secret and its own webhook
configuration, nothing else (its RBAC names both by resourceName).

Reads are GETs; writes are PUTs of the object as read, so the API server refuses them with 409
Conflict when another writer (the other webhook replica's manager, an install) changed the
object since: the caller re-reads. Every call has a short timeout, so a dead API server is an
`ApiError` (`Unreachable`), never a hang. A missing object is `ObjectMissing`, whose message
says that the install creates it.
"""

from __future__ import annotations

import base64
import binascii
import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from headroom.clock import format_time, parse_time
from headroom.fields import FieldError
from kubeapi.client import JsonDict, Kube, KubeApi, NotFound, load_api_client, resource_path

# When the caBundle last changed, written with it: rotation.plan waits `grace` from then.
CHANGED_AT_ANNOTATION = "headroom.dev/ca-bundle-changed-at"
TIMEOUT_SECONDS = 5.0
CONNECT_TIMEOUT_SECONDS = 3.0


class ObjectMissing(NotFound):
    """The Secret or the webhook configuration does not exist."""


@dataclass(frozen=True)
class StoredSecret:
    body: JsonDict  # as read: a write sends it back with its resourceVersion
    data: dict[str, bytes]


@dataclass(frozen=True)
class StoredConfiguration:
    body: JsonDict
    ca_bundles: tuple[str, ...]  # each webhook's clientConfig.caBundle ("" when unset)
    changed_at: datetime | None  # CHANGED_AT_ANNOTATION, None when missing or unreadable


def connect(kubeconfig: str | None, *, in_cluster: bool) -> Kube:
    """A client as kubectl would configure it (or the pod's ServiceAccount with `in_cluster`);
    raises the client's ConfigException (or OSError) when there is nothing to configure."""
    return Kube(
        load_api_client(kubeconfig, in_cluster=in_cluster),
        timeout_seconds=TIMEOUT_SECONDS,
        connect_timeout_seconds=CONNECT_TIMEOUT_SECONDS,
    )


class CertsCluster:
    """The Secret `secret` in `namespace` and the MutatingWebhookConfiguration `configuration`."""

    def __init__(self, kube: KubeApi, *, namespace: str, secret: str, configuration: str) -> None:
        self.kube = kube
        self.namespace, self.secret, self.configuration = namespace, secret, configuration
        self.secret_path = resource_path(
            group="", version="v1", plural="secrets", namespace=namespace, name=secret
        )
        self.configuration_path = resource_path(
            group="admissionregistration.k8s.io",
            version="v1",
            plural="mutatingwebhookconfigurations",
            name=configuration,
        )

    def read_secret(self) -> StoredSecret:
        try:
            body = self.kube.request("GET", self.secret_path, timeout_seconds=TIMEOUT_SECONDS)
        except NotFound as exc:
            raise ObjectMissing(
                f"Secret {self.namespace}/{self.secret} not found: the install creates it "
                "(empty; this command fills it in), check --secret and --namespace"
            ) from exc
        return StoredSecret(body=body, data=_decoded(body.get("data") or {}))

    def save_secret(self, stored: StoredSecret, data: Mapping[str, bytes]) -> StoredSecret:
        """Replace the Secret's data; Conflict when it changed since `stored` was read."""
        body = copy.deepcopy(stored.body)
        body["data"] = {key: base64.b64encode(value).decode() for key, value in data.items()}
        saved = self.kube.request(
            "PUT", self.secret_path, body=body, timeout_seconds=TIMEOUT_SECONDS
        )
        return StoredSecret(body=saved, data=_decoded(saved.get("data") or {}))

    def read_configuration(self) -> StoredConfiguration | None:
        """The webhook configuration; None when it does not exist (yet)."""
        try:
            body = self.kube.request(
                "GET", self.configuration_path, timeout_seconds=TIMEOUT_SECONDS
            )
        except NotFound:
            return None
        return _configuration(body)

    def publish_bundle(
        self, stored: StoredConfiguration | None, bundle_pem: bytes, *, now: datetime
    ) -> StoredConfiguration:
        """Make every webhook of the configuration trust `bundle_pem`, stamped with `now` (rounded
        up to the second: the wait that follows is never shortened); Conflict when it changed
        since `stored` was read."""
        if stored is None:
            raise ObjectMissing(
                f"MutatingWebhookConfiguration {self.configuration} not found: the install "
                "creates it (this command fills in its caBundle), check --webhook-configuration"
            )
        body = copy.deepcopy(stored.body)
        if not body.get("webhooks"):
            raise ObjectMissing(
                f"MutatingWebhookConfiguration {self.configuration} has no webhooks to trust "
                "the CA: reinstall it"
            )
        ca_bundle = base64.b64encode(bundle_pem).decode()
        for webhook in body["webhooks"]:
            webhook.setdefault("clientConfig", {})["caBundle"] = ca_bundle
        annotations = body.setdefault("metadata", {}).setdefault("annotations", {})
        annotations[CHANGED_AT_ANNOTATION] = format_time(math.ceil(now.timestamp()))
        saved = self.kube.request(
            "PUT", self.configuration_path, body=body, timeout_seconds=TIMEOUT_SECONDS
        )
        return _configuration(saved)


def _decoded(data: Mapping[str, object]) -> dict[str, bytes]:
    decoded = {}
    for key, value in data.items():
        try:
            decoded[key] = base64.b64decode(str(value), validate=True)
        except (binascii.Error, ValueError):
            decoded[key] = b""  # not base64: treated as missing, and replaced
    return decoded


def _configuration(body: JsonDict) -> StoredConfiguration:
    bundles = tuple(
        str((webhook.get("clientConfig") or {}).get("caBundle") or "")
        for webhook in body.get("webhooks") or []
    )
    stamp = ((body.get("metadata") or {}).get("annotations") or {}).get(CHANGED_AT_ANNOTATION)
    try:
        changed_at = datetime.fromtimestamp(parse_time(stamp, field=CHANGED_AT_ANNOTATION), UTC)
    except FieldError:
        changed_at = None
    return StoredConfiguration(body=body, ca_bundles=bundles, changed_at=changed_at)
