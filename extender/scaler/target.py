"""The AIScaler's target in the cluster: its /scale subresource, pod template, pods and rival HPAs.

Owns every API call the scaler makes about the workload it scales. Any resource with a `/scale`
subresource works: the resource's path is found through API discovery (cached per kind), the
current replicas and the pod selector come from `/scale`, and the pod template (what one more
replica would need) from the object's `spec.template`. The pods are found in the extender's pod
cache by that selector (a LIST per target per round would cost the API server what the cache
already holds). Failures raise TargetError with words for the AIScaler's status; nothing here
retries or writes anything but the replica count.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from extender import api
from extender.scaler.defrag import DELETION_COST
from extender.scaler.selector import SelectorError, matches, parse_selector
from extender.scaler.spec import TargetRef
from extender.verbs import pod_demand
from headroom.demand import DemandError, GpuDemand
from headroom.ledger import TERMINAL_PHASES
from headroom.podclaims import NO_LOOKUPS, DraLookups
from kubeapi.client import ApiError, JsonDict, KubeApi, NotFound


class TargetError(Exception):
    """The target cannot be read or scaled; `reason` is a condition reason (FailedGetScale...)."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


@dataclass(frozen=True)
class Target:
    path: str  # the object's API path; its /scale is path + "/scale"
    description: str  # "Deployment/llm-server", for messages
    replicas: int  # the /scale spec.replicas
    selector: str  # the /scale status.selector (a label selector string)
    demand: GpuDemand | None  # what one replica of the pod template needs; None: no GPU
    template: JsonDict  # the pod template, for the placement policy annotation


class Targets:
    def __init__(
        self,
        kube: KubeApi,
        *,
        pods: Callable[[], Iterable[JsonDict]],
        dra: Callable[[], DraLookups] = lambda: NO_LOOKUPS,
    ) -> None:
        self.kube = kube
        self._pods = pods  # the extender's pod cache (slim_pod's fields)
        self._dra = dra  # claim templates: what a replica's ResourceClaims will ask
        self._plurals: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def resource_path(self, namespace: str, ref: TargetRef) -> str:
        return api.object_path(
            ref.api_version, namespace=namespace, plural=self._plural(ref), name=ref.name
        )

    def _plural(self, ref: TargetRef) -> str:
        key = (ref.api_version, ref.kind)
        with self._lock:
            if key in self._plurals:
                return self._plurals[key]
        try:
            listing = api.api_resources(self.kube, ref.api_version)
        except ApiError as exc:
            raise TargetError(
                "FailedGetScale", f"API {ref.api_version} is not served: {exc}"
            ) from exc
        for resource in listing.get("resources") or []:
            if resource.get("kind") == ref.kind and "/" not in str(resource.get("name", "")):
                plural = str(resource["name"])
                with self._lock:
                    self._plurals[key] = plural
                return plural
        raise TargetError("FailedGetScale", f"API {ref.api_version} has no kind {ref.kind}")

    def read(self, namespace: str, ref: TargetRef) -> Target:
        path = self.resource_path(namespace, ref)
        description = f"{ref.kind}/{ref.name}"
        try:
            scale = api.get_scale(self.kube, path)
            obj = api.get_target(self.kube, path)
        except NotFound as exc:
            raise TargetError("FailedGetScale", f"{description}: not found") from exc
        except ApiError as exc:
            raise TargetError("FailedGetScale", f"{description}: {exc}") from exc
        selector = str((scale.get("status") or {}).get("selector") or "")
        if not selector:
            raise TargetError(
                "FailedGetScale",
                f"{description}: its /scale has no pod selector "
                "(status.selector), so its pods cannot be found",
            )
        template = (obj.get("spec") or {}).get("template") or {}
        # The template has no namespace of its own; its claim templates are the target's.
        metadata = {**(template.get("metadata") or {}), "namespace": namespace}
        pod = {"metadata": metadata, "spec": template.get("spec") or {}}
        try:
            demand = pod_demand(pod, self._dra())[0]
        except DemandError as exc:
            raise TargetError("InvalidPodTemplate", f"{description} pod template: {exc}") from exc
        replicas = int((scale.get("spec") or {}).get("replicas") or 0)
        return Target(path, description, replicas, selector, demand, pod)

    def pods(self, namespace: str, selector: str) -> list[JsonDict]:
        """The target's live pods, neither finished nor being deleted, by name (the order a
        LIST answers in)."""
        try:
            requirements = parse_selector(selector)
        except SelectorError as exc:
            raise TargetError("FailedGetPods", f"cannot list the target's pods: {exc}") from exc
        found = []
        for pod in self._pods():
            meta = pod.get("metadata") or {}
            if (
                meta.get("namespace") == namespace
                and not meta.get("deletionTimestamp")
                and (pod.get("status") or {}).get("phase") not in TERMINAL_PHASES
                and matches(requirements, meta.get("labels") or {})
            ):
                found.append(pod)
        return sorted(found, key=lambda p: str(p["metadata"].get("name", "")))

    def rival_hpa(self, namespace: str, ref: TargetRef) -> str | None:
        """The name of an HPA scaling the same workload, if there is one we can see."""
        try:
            hpas = api.list_hpas(self.kube, namespace)
        except ApiError:
            return None  # no HPA API or no permission: nothing we could detect
        for hpa in hpas:
            theirs: dict[str, Any] = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
            if (
                theirs.get("kind") == ref.kind
                and theirs.get("name") == ref.name
                and _group(theirs.get("apiVersion", "")) == _group(ref.api_version)
            ):
                return str((hpa.get("metadata") or {}).get("name"))
        return None

    def set_deletion_costs(self, namespace: str, costs: Mapping[str, int]) -> int:
        """Write `controller.kubernetes.io/pod-deletion-cost` on these pods (by name); returns
        how many were written. A pod that cannot be patched keeps its cost: the ReplicaSet then
        removes in its own order, which is slower to defragment, never wrong."""
        written = 0
        for name, cost in costs.items():
            patch = {"metadata": {"annotations": {DELETION_COST: str(cost)}}}
            try:
                api.patch_pod(self.kube, namespace=namespace, name=name, patch=patch)
            except ApiError:
                continue
            written += 1
        return written

    def scale(self, target: Target, replicas: int) -> None:
        try:
            api.patch_scale(self.kube, target.path, replicas=replicas)
        except ApiError as exc:
            raise TargetError(
                "FailedUpdateScale", f"{target.description}: cannot scale to {replicas}: {exc}"
            ) from exc


def _group(api_version: object) -> str:
    """`apps/v1` → `apps`; `v1` → `` (an HPA may name another version of the same group)."""
    text = str(api_version)
    return text.rpartition("/")[0]
