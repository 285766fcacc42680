"""The AIScaler's target in the cluster: its /scale subresource, pod template, pods and rival HPAs.

Owns every API call the scaler makes about the workload it scales. Any resource with a `/scale`
subresource works: the resource's path is found through API discovery (cached per kind), the
current replicas and the pod selector come from `/scale`, and the pod template (what one more
replica would need) from the object's `spec.template`. Failures raise TargetError with words for
the AIScaler's status; nothing here retries or writes anything but the replica count.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from extender.scaler.spec import TargetRef
from headroom.demand import DemandError, GpuDemand
from kubeapi.client import ApiError, JsonDict, Kube

HPA_PATH = "/apis/autoscaling/v1/namespaces/{namespace}/horizontalpodautoscalers"
TERMINAL_PHASES = ("Succeeded", "Failed")


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


def _group_path(api_version: str) -> str:
    return "/api/v1" if api_version == "v1" else f"/apis/{api_version}"


class Targets:
    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._plurals: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def resource_path(self, namespace: str, ref: TargetRef) -> str:
        plural = self._plural(ref)
        return f"{_group_path(ref.api_version)}/namespaces/{namespace}/{plural}/{ref.name}"

    def _plural(self, ref: TargetRef) -> str:
        key = (ref.api_version, ref.kind)
        with self._lock:
            if key in self._plurals:
                return self._plurals[key]
        try:
            listing = self.kube.request("GET", _group_path(ref.api_version))
        except ApiError as exc:
            raise TargetError("FailedGetScale", f"API {ref.api_version} is not served: "
                              f"{exc}") from exc
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
            scale = self.kube.request("GET", f"{path}/scale")
            obj = self.kube.request("GET", path)
        except ApiError as exc:
            what = "not found" if exc.status == 404 else str(exc)
            raise TargetError("FailedGetScale", f"{description}: {what}") from exc
        selector = str((scale.get("status") or {}).get("selector") or "")
        if not selector:
            raise TargetError("FailedGetScale", f"{description}: its /scale has no pod selector "
                              "(status.selector), so its pods cannot be found")
        template = (obj.get("spec") or {}).get("template") or {}
        pod = {"metadata": template.get("metadata") or {}, "spec": template.get("spec") or {}}
        try:
            demand = GpuDemand.from_pod(pod)
        except DemandError as exc:
            raise TargetError("InvalidPodTemplate", f"{description} pod template: {exc}") from exc
        replicas = int((scale.get("spec") or {}).get("replicas") or 0)
        return Target(path, description, replicas, selector, demand, pod)

    def pods(self, namespace: str, selector: str) -> list[JsonDict]:
        """The target's live pods: neither finished nor being deleted."""
        try:
            listing = self.kube.request("GET", f"/api/v1/namespaces/{namespace}/pods",
                                        query={"labelSelector": selector})
        except ApiError as exc:
            raise TargetError("FailedGetPods", f"cannot list the target's pods: {exc}") from exc
        return [p for p in listing.get("items") or []
                if not (p.get("metadata") or {}).get("deletionTimestamp")
                and (p.get("status") or {}).get("phase") not in TERMINAL_PHASES]

    def rival_hpa(self, namespace: str, ref: TargetRef) -> str | None:
        """The name of an HPA scaling the same workload, if there is one we can see."""
        try:
            listing = self.kube.request("GET", HPA_PATH.format(namespace=namespace))
        except ApiError:
            return None  # no HPA API or no permission: nothing we could detect
        for hpa in listing.get("items") or []:
            theirs: dict[str, Any] = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
            if theirs.get("kind") == ref.kind and theirs.get("name") == ref.name and \
                    _group(theirs.get("apiVersion", "")) == _group(ref.api_version):
                return str((hpa.get("metadata") or {}).get("name"))
        return None

    def scale(self, target: Target, replicas: int) -> None:
        try:
            self.kube.request("PATCH", f"{target.path}/scale",
                              body={"spec": {"replicas": replicas}},
                              content_type="application/merge-patch+json")
        except ApiError as exc:
            raise TargetError("FailedUpdateScale", f"{target.description}: cannot scale to "
                              f"{replicas}: {exc}") from exc


def _group(api_version: object) -> str:
    """`apps/v1` → `apps`; `v1` → `` (an HPA may name another version of the same group)."""
    text = str(api_version)
    return text.rpartition("/")[0]
