"""The bind verb: the one place a GPU is committed to a pod.

Filter may pass two pods for the same free GPU (the scheduler filters the next pod before the
previous one's bind arrives), so bind decides again under a lock, against a view that holds every
in-flight bind: a pod that no longer fits gets an `Error` and the scheduler tries again. The
reservation is recorded before the API write and before answering; for shared mode the chosen
GPUs go in `headroom.dev/assigned-gpus` on the Binding itself, which the API server copies onto the
pod as it binds it, so the kubelet starts the containers with them. A retry is harmless.

A pod whose GPUs come from ResourceClaims arrives with its devices chosen: the scheduler's PreBind
wrote the allocation. Bind reads the claims as they are now (the watch may lag that write) and
checks that the chosen GPUs still hold the pod by live memory, under the same lock; if not, it
refuses, the scheduler deallocates and tries again, and the filter keeps that node out until the
GPU changes (`extender.dracheck`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from extender import api
from extender.dracheck import DraGate, holders, without
from extender.verbs import PolicyError, Settings, pod_demand, pod_policy
from extender.view import ClusterView
from extender.wire import ExtenderBindingArgs, ExtenderBindingResult
from headroom import names
from headroom.demand import DemandError, GpuDemand, assigned_gpus
from headroom.dra import reserved_pods
from headroom.fields import FieldError
from headroom.fit import Fit, PodClaim, fit
from headroom.podclaims import DraLookups, PodGpus, claim_refs, has_claims
from kubeapi.client import ApiError, Conflict, KubeApi, NotFound

log = logging.getLogger(__name__)
PodLookup = Callable[[str, str], dict[str, Any] | None]  # (namespace, name) -> pod or None


class BindRefused(Exception):
    """A bind that must not happen; the message goes to the scheduler's `Error`."""


class Binder:
    def __init__(
        self,
        kube: KubeApi,
        view: ClusterView,
        *,
        settings: Settings,
        clock: Callable[[], float] = time.time,
        pod_lookup: PodLookup = lambda namespace, name: None,
    ) -> None:
        self.kube = kube
        self.view = view
        self.settings = settings
        self.clock = clock
        self.pod_lookup = pod_lookup  # the pod watch cache: saves a GET per bind
        self._lock = threading.Lock()

    def bind(self, args: ExtenderBindingArgs) -> ExtenderBindingResult:
        try:
            self._bind(args)
        except BindRefused as exc:
            log.info(
                "bind %s/%s to %s refused: %s",
                args["PodNamespace"],
                args["PodName"],
                args["Node"],
                exc,
            )
            return ExtenderBindingResult(Error=str(exc))
        return ExtenderBindingResult(Error="")

    def _bind(self, args: ExtenderBindingArgs) -> None:
        cached = self.pod_lookup(args["PodNamespace"], args["PodName"])
        fresh = cached is not None and (cached.get("metadata") or {}).get("uid") == args["PodUID"]
        pod = cached if fresh and cached is not None else self._read_pod(args)
        bound_to = (pod.get("spec") or {}).get("nodeName")
        if bound_to == args["Node"]:
            return  # a retry of a bind that already happened
        if bound_to:
            raise BindRefused(f"pod is already bound to {bound_to}")
        fresh = self._fresh_claims(pod)
        try:
            demand, claims = pod_demand(pod, self._lookups(fresh))
            policy = pod_policy(pod, self.settings.policy)
        except (DemandError, PolicyError) as exc:
            raise BindRefused(str(exc)) from exc
        if demand is not None and demand.dra:
            try:
                claim: PodClaim | None = self._reserve_allocated(args, demand, claims)
            except BindRefused:
                self._deallocate(args["PodUID"], fresh)
                raise
        else:
            claim = self._reserve(args, demand, policy=policy) if demand is not None else None
        annotations = {}
        # A DRA pod's claims name its GPUs; the DRA driver, not an annotation, hands them out.
        if (
            claim is not None
            and claim.gpu_uuids
            and not claim.demand.dra
            and claim.gpu_uuids != assigned_gpus(pod)
        ):
            annotations[names.ASSIGNED_GPUS_ANNOTATION] = ",".join(claim.gpu_uuids)
        try:
            self._post_binding(args, annotations)
        except BindRefused:
            self.view.release(args["PodUID"])
            raise

    def _reserve(self, args: ExtenderBindingArgs, demand: GpuDemand, *, policy: Any) -> PodClaim:
        uid, node = args["PodUID"], args["Node"]
        with self._lock:
            earlier = self.view.inflight(uid)
            if earlier is not None and earlier[0] == node:
                return earlier[1]  # a retry: keep the GPUs chosen the first time
            self.view.release(uid)  # an earlier attempt on another node
            verdict = fit(
                demand,
                self.view.snapshot(node),
                now_unix_seconds=self.clock(),
                staleness_seconds=self.settings.staleness_seconds,
                policy=policy,
            )
            if not isinstance(verdict, Fit):
                raise BindRefused(f"{node} no longer fits: {verdict.message}")
            # Exclusive pods get their GPUs from the device plugin; Headroom only counts them.
            claim = PodClaim(uid, demand, verdict.gpu_uuids if demand.shared else ())
            self.view.reserve(node, claim)
            return claim

    def _fresh_claims(self, pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """The pod's ResourceClaims as the API server has them now, by name."""
        if not has_claims(pod):
            return {}
        namespace = str((pod.get("metadata") or {}).get("namespace") or "")
        fresh: dict[str, dict[str, Any]] = {}
        try:
            refs = claim_refs(pod)
        except FieldError as exc:
            raise BindRefused(str(exc)) from exc
        for ref in refs:
            if ref.claim_name is None:
                raise BindRefused(f"{ref.field}: its ResourceClaim has not been made yet")
            try:
                fresh[ref.claim_name] = api.get_claim(
                    self.kube, namespace=namespace, name=ref.claim_name
                )
            except NotFound as exc:
                raise BindRefused(f"{ref.field}: ResourceClaim {ref.claim_name} not found") from exc
            except ApiError as exc:
                raise BindRefused(f"cannot read ResourceClaim {ref.claim_name}: {exc}") from exc
        return fresh

    def _lookups(self, fresh: dict[str, dict[str, Any]]) -> DraLookups:
        cached = self.view.dra.lookups()
        if not fresh:
            return cached
        return DraLookups(
            claim=lambda _namespace, name: fresh.get(name),
            template=cached.template,
            devices=cached.devices,
            device_classes=cached.device_classes,
            drivers=cached.drivers,
        )

    def _deallocate(self, pod_uid: str, claims: dict[str, dict[str, Any]]) -> None:
        """Undo the allocation of the pod's claims that no other pod uses, as the scheduler's
        own PostFilter does for a claim that cannot be used where it is allocated. Without this
        the claim would stay on the refused GPU: the scheduler's Unreserve only takes the pod out
        of `reservedFor`, and the next cycle could only try the same node and GPU again."""
        for name, claim in claims.items():
            status = claim.get("status") or {}
            others = [u for u in reserved_pods(claim) if u != pod_uid]
            if not status.get("allocation") or others:
                continue
            cleared = {**claim, "status": {**status, "allocation": None, "reservedFor": None}}
            cleared["status"].pop("devices", None)
            try:
                api.put_claim_status(self.kube, cleared)
            except ApiError as exc:  # changed meanwhile: the scheduler sees to it
                log.info("ResourceClaim %s: allocation left as is (%s)", name, exc)
            else:
                log.info("ResourceClaim %s: allocation undone after the refused bind", name)

    def _reserve_allocated(
        self, args: ExtenderBindingArgs, demand: GpuDemand, claims: PodGpus
    ) -> PodClaim:
        """Check the GPUs the DRA allocator chose, by live memory, and hold them."""
        uid, node = args["PodUID"], args["Node"]
        if not claims.allocated:
            raise BindRefused(
                "its ResourceClaims are not allocated: the scheduler profile must run the "
                "DynamicResources plugin"
            )
        if node not in claims.nodes:
            raise BindRefused(f"its ResourceClaims hold GPUs on {', '.join(claims.nodes)}")
        gate = DraGate(self.view, settings=self.settings, clock=self.clock)
        with self._lock:
            earlier = self.view.inflight(uid)
            if earlier is not None and earlier[0] == node:
                return earlier[1]
            snapshot = without(self.view.snapshot(node), uid)
            for gpu_uuid in claims.gpu_uuids:
                reason = gate.pinned(demand, snapshot, (gpu_uuid,))
                if reason is None:
                    continue
                state = holders(snapshot, gpu_uuid)
                if state is not None:
                    self.view.record_miss(node, gpu_uuid, state)
                raise BindRefused(
                    f"{node}: the allocated GPU cannot hold the pod: {reason.message}"
                )
            claim = PodClaim(uid, demand, claims.gpu_uuids)
            self.view.reserve(node, claim)
            return claim

    def _read_pod(self, args: ExtenderBindingArgs) -> dict[str, Any]:
        try:
            pod = api.get_pod(self.kube, namespace=args["PodNamespace"], name=args["PodName"])
        except ApiError as exc:
            raise BindRefused(f"cannot read the pod: {exc}") from exc
        if (pod.get("metadata") or {}).get("uid") != args["PodUID"]:
            raise BindRefused("the pod was replaced by another of the same name")
        return pod

    def _post_binding(self, args: ExtenderBindingArgs, annotations: dict[str, str]) -> None:
        # The API server copies a Binding's annotations onto the pod as it binds it: the GPUs
        # and the node are recorded in one write, and no pod is ever seen with one but not the
        # other.
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {
                "name": args["PodName"],
                "uid": args["PodUID"],
                "annotations": annotations,
            },
            "target": {"apiVersion": "v1", "kind": "Node", "name": args["Node"]},
        }
        try:
            api.post_binding(
                self.kube, namespace=args["PodNamespace"], name=args["PodName"], binding=binding
            )
        except Conflict as exc:
            if self._bound_to(args) == args["Node"]:
                return  # our own earlier attempt landed
            raise BindRefused(f"cannot bind: {exc}") from exc
        except ApiError as exc:
            raise BindRefused(f"cannot bind: {exc}") from exc

    def _bound_to(self, args: ExtenderBindingArgs) -> str | None:
        try:
            pod = self._read_pod(args)
        except BindRefused:
            return None
        node = (pod.get("spec") or {}).get("nodeName")
        return str(node) if node else None
