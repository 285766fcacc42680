"""The extender's Flask app: the scheduler's verbs, health, readiness and metrics.

`create_app(config)` builds the running parts from an `ExtenderConfig` (watch caches feeding the
cluster view, the binder, and the controllers: leadership, requeue, gpu-ready gate, AIScalers)
into one `Runtime`, without starting a thread. The serving edge calls `Runtime.start()` once the
gunicorn worker is up and `Runtime.stop()` when it exits; a test may pass a ready-made Runtime and
start it or not. The state (view, in-flight binds) lives in this one process: one worker.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from flask import Blueprint, Flask, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from werkzeug.exceptions import HTTPException

from extender import api
from extender.binder import Binder
from extender.config import ExtenderConfig
from extender.dracache import DraCache
from extender.dracheck import DraGate
from extender.gate import GateController
from extender.jsonio import answer, request_json
from extender.leader import Leadership
from extender.metrics import ExtenderMetrics, MetricsListener
from extender.requeue import Requeuer, parked_pods
from extender.scaler.controller import ScalerController
from extender.slimpod import slim_pod
from extender.verbs import PolicyError, Settings, filter_nodes, prioritize
from extender.view import ClusterView
from extender.wire import WireError, parse_args, parse_binding
from headroom import names
from headroom.demand import DemandError
from headroom.fields import FieldError
from headroom.fit import Policy
from headroom.podclaims import DraLookups, has_claims, pod_gpus
from headroom.worker import Worker
from kubeapi.cache import DELETED, WatchCache, WatchEvent
from kubeapi.client import JsonDict, Kube, KubeApi, load_api_client
from serving.server import LIFECYCLE_KEY

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 64 * 2**20  # full Node objects of a large cluster when not nodeCacheCapable


class Running(Protocol):
    """A part with a thread of its own: the caches and the controllers."""

    def start(self) -> None: ...
    def stop(self) -> None: ...


@dataclass
class Runtime:
    view: ClusterView
    settings: Settings
    leadership: Leadership
    dra_gate: DraGate | None = None
    binder: Binder | None = None
    requeuer: Requeuer | None = None
    caches: list[WatchCache] = field(default_factory=list)
    metrics: ExtenderMetrics = field(default_factory=ExtenderMetrics)
    clock: Callable[[], float] = time.time
    # Started in this order, stopped in the reverse: the caches first, as the controllers read them.
    parts: list[Running] = field(default_factory=list)

    def ready(self) -> bool:
        return all(cache.synced for cache in self.caches)

    def start(self) -> None:
        for part in self.parts:
            part.start()

    def stop(self) -> None:
        for part in reversed(self.parts):
            part.stop()


def build_runtime(kube: KubeApi, config: ExtenderConfig) -> Runtime:
    """Every running part, wired and not yet started."""
    settings = Settings(staleness_seconds=config.staleness_seconds, policy=Policy(config.policy))
    dra = DraCache(device_classes=config.device_classes, drivers=config.drivers)
    view = ClusterView(dra=dra)
    leadership = Leadership(kube, lease=config.lease, identity=config.identity_or_hostname)
    parked: list[Callable[[], None]] = []

    def on_pod(event: WatchEvent) -> None:
        view.apply_pod(event)
        if event.type != DELETED and parked_pods(
            [event.object], scheduler_name=names.SCHEDULER_NAME
        ):
            for wake in parked:
                wake()

    caches = [
        WatchCache(kube, api.GPUNODES, on_event=view.apply_gpunode),
        WatchCache(kube, api.NODES, on_event=view.apply_node),
        WatchCache(kube, api.PODS, on_event=on_pod, transform=slim_pod),
        # DRA: optional, so a cluster that does not serve resource.k8s.io still gets ready.
        WatchCache(kube, api.RESOURCESLICES, on_event=dra.apply_slice, optional=True),
        WatchCache(kube, api.RESOURCECLAIMS, on_event=dra.apply_claim, optional=True),
        WatchCache(kube, api.RESOURCECLAIMTEMPLATES, on_event=dra.apply_template, optional=True),
        WatchCache(kube, api.DEVICETAINTRULES, on_event=dra.apply_rule, optional=True),
    ]
    pods = caches[2]
    requeuer = Requeuer(
        kube,
        view,
        pods=lambda: pods.snapshot().values(),
        ready=lambda: all(c.synced for c in caches),
        is_leader=leadership.is_leader,
        staleness_seconds=settings.staleness_seconds,
        policy=settings.policy,
    )
    parked.append(requeuer.on_parked)

    def on_leading(leading: bool) -> None:
        if leading:  # the Lease was read: the API server answers, so no cache waits it out
            for cache in caches:
                cache.retry_now()
        requeuer.on_leading(leading)

    leadership.on_change.append(on_leading)
    # Not among the caches readiness waits for: placing pods does not depend on the AIScalers.
    scalers = WatchCache(kube, api.AISCALERS)
    binder = Binder(
        kube,
        view,
        settings=settings,
        pod_lookup=lambda namespace, name: pods.get(f"{namespace}/{name}"),
    )
    gate = GateController(
        kube,
        pods=lambda: pods.snapshot().values(),
        report=view.report,
        claimed=lambda pod: claimed_gpus(pod, view.dra.lookups()),
        is_leader=leadership.is_leader,
        staleness_seconds=settings.staleness_seconds,
    )
    scaler = ScalerController(
        kube,
        view,
        scalers=lambda: scalers.snapshot().values(),
        pods=lambda: pods.snapshot().values(),
        ready=lambda: pods.synced,
        is_leader=leadership.is_leader,
        settings=settings,
        prometheus_url=config.prometheus_url or None,
        scale_down_window_seconds=config.scale_down_stabilization_seconds,
    )
    runtime = Runtime(
        view=view,
        settings=settings,
        leadership=leadership,
        dra_gate=DraGate(view, settings=settings, clock=time.time),
        binder=binder,
        requeuer=requeuer,
        caches=caches,
        parts=[
            *caches,
            GcFreeze(caches, before=view.summarize_all),
            leadership,
            requeuer,
            gate,
            scalers,
            scaler,
        ],
    )
    runtime.metrics.track(
        reservations=view.reservations,
        leader=leadership.is_leader,
        requeued=lambda: requeuer.nudged,
        scaler_reconciles=lambda: scaler.reconciled,
        cache_sync={c.path.rsplit("/", 1)[-1]: _last_sync(c) for c in caches},
        staleness_seconds=settings.staleness_seconds,
        report_times=view.report_times,
        waiting_since=lambda: requeuer.waiting_since,
        scalers=lambda: scalers.snapshot().values(),
    )
    if config.metrics_address is not None:
        host, port = config.metrics_address
        runtime.parts.append(MetricsListener(runtime.metrics.registry, host=host, port=port))
    return runtime


class GcFreeze:
    """Once the caches hold the cluster, move those long-lived objects out of the garbage
    collector's sight: a full collection over a large cluster's view took 100+ ms, and landed in
    the middle of filter requests (bench/extender.py, p99). Every node's summary is made first
    (`before`), so those are frozen too rather than made by the first requests and scanned by
    every collection after. Objects made later are collected as usual."""

    def __init__(self, caches: list[WatchCache], *, before: Callable[[], None]) -> None:
        self.caches = caches
        self.before = before
        self.worker = Worker(self._run, name="gc-freeze")

    def start(self) -> None:
        self.worker.start()

    def stop(self) -> None:
        self.worker.stop()

    def _run(self) -> None:
        for cache in self.caches:
            while not cache.wait_synced(1.0):
                if self.worker.stopped.is_set():
                    return
        self.before()
        gc.collect()
        gc.freeze()


def claimed_gpus(pod: JsonDict, dra: DraLookups) -> tuple[str, ...]:
    """The GPUs a pod's DRA claims hold (for the gpu-ready gate); () when they cannot be read."""
    if not has_claims(pod):
        return ()
    try:
        return pod_gpus(pod, dra).gpu_uuids
    except FieldError:
        return ()


def _last_sync(cache: WatchCache) -> Callable[[], float]:
    return lambda: cache.stats.last_sync_monotonic


def create_app(config: ExtenderConfig | None = None, *, runtime: Runtime | None = None) -> Flask:
    """The app over a new Runtime built from `config`, or over the given one."""
    if runtime is None:
        if config is None:
            raise TypeError("create_app: pass an ExtenderConfig, or a Runtime")
        runtime = build_runtime(Kube(load_api_client(config.kubeconfig)), config)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.extensions["headroom_extender"] = runtime
    app.extensions[LIFECYCLE_KEY] = runtime  # the serving edge starts and stops it
    app.register_blueprint(verbs)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        return answer({"error": exc.description}, exc.code or 500)

    return app


verbs = Blueprint("verbs", __name__)


def runtime() -> Runtime:
    found: Runtime = current_app.extensions["headroom_extender"]
    return found


def bad_request(verb: str, message: str) -> Response:
    runtime().metrics.requests_refused.labels(verb).inc()
    return answer({"error": message}, 400)


def not_acting() -> str | None:
    rt = runtime()
    if not rt.ready():
        return "extender not ready: its caches are still syncing"
    if not rt.leadership.is_leader():
        return "extender on standby: another replica is the leader"
    return None


@verbs.post("/filter")
def filter_verb() -> Response:
    rt = runtime()
    with rt.metrics.verb_seconds.labels("filter").time():
        try:
            pod, node_names, nodes = parse_args(request_json())
        except WireError as exc:
            return bad_request("filter", str(exc))
        refusal = not_acting()
        if refusal:
            return answer({"Error": refusal})
        try:
            gate, uid = rt.dra_gate, str((pod.get("metadata") or {}).get("uid") or "")
            outcome = filter_nodes(
                pod,
                node_names,
                nodes,
                summaries=rt.view.summaries,
                now_unix_seconds=rt.clock(),
                settings=rt.settings,
                dra=rt.view.dra.lookups(),
                dra_check=None
                if gate is None
                else lambda node, demand, claims: gate.check(node, demand, claims, pod_uid=uid),
            )
        except (DemandError, PolicyError) as exc:
            return answer({"Error": str(exc)})
        for kind, count in outcome.counts.items():
            rt.metrics.filter_nodes.labels(kind).inc(count)
        return answer(outcome.result)


@verbs.post("/prioritize")
def prioritize_verb() -> Response:
    rt = runtime()
    with rt.metrics.verb_seconds.labels("prioritize").time():
        try:
            pod, node_names, _ = parse_args(request_json())
        except WireError as exc:
            return bad_request("prioritize", str(exc))
        refusal = not_acting()
        if refusal:  # the scheduler ignores a failed prioritize and goes on without it
            return answer({"error": refusal}, 503)
        try:
            scores = prioritize(
                pod,
                node_names,
                summaries=rt.view.summaries,
                settings=rt.settings,
                dra=rt.view.dra.lookups(),
            )
        except (DemandError, PolicyError) as exc:
            return bad_request("prioritize", str(exc))
        return answer(scores)


@verbs.post("/bind")
def bind_verb() -> Response:
    rt = runtime()
    with rt.metrics.verb_seconds.labels("bind").time():
        try:
            args = parse_binding(request_json())
        except WireError as exc:
            return bad_request("bind", str(exc))
        refusal = not_acting() or (None if rt.binder else "this extender does not bind")
        if refusal or rt.binder is None:
            rt.metrics.binds.labels("refused").inc()
            return answer({"Error": refusal})
        result = rt.binder.bind(args)
        rt.metrics.binds.labels("error" if result.get("Error") else "bound").inc()
        return answer(result)


@verbs.get("/healthz")
def healthz() -> Response:
    return answer({"status": "ok"})


@verbs.get("/readyz")
def readyz() -> Response:
    if runtime().ready():
        return answer({"status": "ready"})
    return answer({"status": "caches syncing"}, 503)


@verbs.get("/metrics")
def metrics() -> Response:
    return Response(generate_latest(runtime().metrics.registry), mimetype=CONTENT_TYPE_LATEST)
