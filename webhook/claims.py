"""The webhook's one edge to the Kubernetes API: the ResourceClaims and ResourceClaimTemplates a
DRA pod names, read before its review.

`ClaimReader.lookups(namespace, pod)` GETs each claim (`resourceClaimName`) and template
(`resourceClaimTemplateName`) of the pod's `spec.resourceClaims` in its namespace, and returns
them as a `DraLookups` (`webhook.dra.lookups`): what was found, what was not, and what could not
be read and why. A pod without claims costs no request. Every read has a short timeout and all of
one pod's reads share a budget, well inside the API server's 5 s wait for the webhook, so an API
server that does not answer becomes a denial naming the claim, never a hung admission.

The webhook may only `get` these two kinds (manifests/webhook/rbac.yaml).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from headroom.fields import FieldError
from headroom.podclaims import DraLookups, claim_refs
from kubeapi.client import (
    ApiError,
    JsonDict,
    Kube,
    KubeApi,
    NotFound,
    load_api_client,
    resource_path,
)
from webhook.config import WebhookConfig
from webhook.dra import (
    RESOURCE_CLAIM,
    RESOURCE_CLAIM_TEMPLATE,
    ClaimReads,
    lookups,
)

GROUP, VERSION = "resource.k8s.io", "v1"
PLURALS = {RESOURCE_CLAIM: "resourceclaims", RESOURCE_CLAIM_TEMPLATE: "resourceclaimtemplates"}
READ_TIMEOUT_SECONDS = 2.0  # one GET
CONNECT_TIMEOUT_SECONDS = 1.0
BUDGET_SECONDS = 3.0  # all of one pod's GETs: the API server waits 5 s (timeoutSeconds)


def object_path(kind: str, namespace: str, name: str) -> str:
    """`/apis/resource.k8s.io/v1/namespaces/{namespace}/{resourceclaims|...}/{name}`."""
    return resource_path(
        group=GROUP, version=VERSION, plural=PLURALS[kind], namespace=namespace, name=name
    )


class ClaimReader:
    """Reads a pod's claims and templates through `kube`, within the time budget."""

    def __init__(
        self,
        kube: KubeApi,
        *,
        device_classes: tuple[str, ...],
        timeout_seconds: float = READ_TIMEOUT_SECONDS,
        budget_seconds: float = BUDGET_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube, self.device_classes = kube, device_classes
        self.timeout_seconds, self.budget_seconds, self.clock = (
            timeout_seconds,
            budget_seconds,
            clock,
        )

    def lookups(self, namespace: str, pod: Mapping[str, Any]) -> DraLookups:
        """What the pod's claims and templates are, as read now."""
        return lookups(self.read(namespace, pod), device_classes=self.device_classes)

    def read(self, namespace: str, pod: Mapping[str, Any]) -> ClaimReads:
        try:
            refs = claim_refs(pod)
        except FieldError:  # malformed: the review denies it naming the field, nothing to read
            return ClaimReads()
        found: dict[str, dict[str, JsonDict]] = {kind: {} for kind in PLURALS}
        failures: dict[tuple[str, str], str] = {}
        missing: set[tuple[str, str]] = set()
        deadline = self.clock() + self.budget_seconds

        def get(kind: str, name: str) -> JsonDict | None:
            if name in found[kind] or (kind, name) in failures or (kind, name) in missing:
                return found[kind].get(name)  # each object is read once
            left = deadline - self.clock()
            if left <= 0:
                failures[kind, name] = f"not read: {self.budget_seconds:g} s spent on the others"
                return None
            try:
                obj = self.kube.request(
                    "GET",
                    object_path(kind, namespace, name),
                    timeout_seconds=min(self.timeout_seconds, left),
                )
            except NotFound:
                missing.add((kind, name))
                return None
            except ApiError as exc:  # Unreachable, a timeout, 403, ...
                failures[kind, name] = str(exc)
                return None
            found[kind][name] = obj
            return obj

        for ref in refs:
            # As `pod_gpus` looks them up: the claim when named, else (or when it is not found)
            # the template it is made from.
            claim = get(RESOURCE_CLAIM, ref.claim_name) if ref.claim_name else None
            if claim is None and ref.template_name:
                get(RESOURCE_CLAIM_TEMPLATE, ref.template_name)
        return ClaimReads(
            claims=found[RESOURCE_CLAIM],
            templates=found[RESOURCE_CLAIM_TEMPLATE],
            failures=failures,
        )


def claim_reader(config: WebhookConfig) -> ClaimReader | None:
    """The reader `config`'s API access gives; None when the webhook has none."""
    if not config.api_access:
        return None
    api_client = load_api_client(config.kubeconfig, in_cluster=config.in_cluster)
    kube = Kube(
        api_client,
        timeout_seconds=READ_TIMEOUT_SECONDS,
        connect_timeout_seconds=CONNECT_TIMEOUT_SECONDS,
    )
    return ClaimReader(kube, device_classes=config.gpu_device_classes)


def access_problem(config: WebhookConfig) -> str | None:
    """Why the configured API access cannot be loaded, naming the flag; None when it can (or
    there is none)."""
    if not config.api_access:
        return None
    flag = "--in-cluster" if config.in_cluster else "--kubeconfig"
    try:
        load_api_client(config.kubeconfig, in_cluster=config.in_cluster)
    except Exception as exc:  # the client's ConfigException, or a bad file's own error
        detail = str(exc).removeprefix(f"{flag}: ")
        return f"{flag}: cannot configure API access: {detail}"
    return None
