"""The AIScaler controller: runs inside the extender, while it leads, over the extender's own view.

Each AIScaler is reconciled every `pollingInterval` seconds (at once when its spec changes):
parse the spec, read the target's /scale and pod template, refuse to act beside an HPA on the
same workload, read the pods and the metrics, `evaluate` (decide, then tighten to what the GPUs
can hold, using the same ClusterView snapshots the filter uses), write /scale when the count
changes, then the status, and an Event on every scale and every change of limit.

What it never does: scale on a spec it cannot read, on a target it cannot read, beside an HPA, or
down because a metric went missing (decide holds). The recommendation history lives in memory,
as HPA's does; a new leader starts it with the current replica count as a recommendation made
now, so a restart cannot cut replicas before the scale-down window has passed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import Any

from extender import api
from extender.leader import run_while_leading
from extender.scaler import coldstart
from extender.scaler.decision import History, MetricObservation, Observations
from extender.scaler.defrag import changed_costs, deletion_costs
from extender.scaler.evaluate import ScalingOutcome, evaluate
from extender.scaler.feasibility import LimitReason
from extender.scaler.nodes import RoundCapacity
from extender.scaler.report import blocked_status, event, round_status, with_transitions
from extender.scaler.schedule import open_window, schedule_status
from extender.scaler.sources import (
    PodEndpoint,
    SourceDown,
    gpu_utilization,
    query_prometheus,
    scrape_pods,
)
from extender.scaler.spec import (
    DEFAULT_POLLING_INTERVAL_SECONDS,
    GpuSource,
    MetricSpec,
    PodsSource,
    ScalerSpec,
    SpecError,
    parse_spec,
)
from extender.scaler.state import InFlight, ScalerState, last_scale, pod_name, pod_state
from extender.scaler.target import Target, TargetError, Targets
from extender.verbs import PolicyError, Settings, pod_policy
from extender.view import ClusterView
from headroom.capacity import CapacityIndex
from headroom.fit import NodeSnapshot
from headroom.worker import Worker
from kubeapi.client import ApiError, JsonDict, KubeApi

log = logging.getLogger(__name__)
STALE_READ_SECONDS = 60.0


@dataclass
class ScalerController:
    kube: KubeApi
    view: ClusterView
    scalers: Callable[[], Iterable[JsonDict]]
    pods: Callable[[], Iterable[JsonDict]]  # the extender's pod cache
    is_leader: Callable[[], bool]
    settings: Settings
    # Until the pod cache has listed once, a target would seem to have no pods: no round runs.
    ready: Callable[[], bool] = lambda: True
    prometheus_url: str | None = None
    scale_down_window_seconds: int | None = None  # None: HPA's default (300 s)
    tick_seconds: float = 1.0
    scrape_timeout_seconds: float = 2.0
    metric_workers: int = 16  # metric reads at once, over every AIScaler
    round_wait_seconds: float = 0.5  # how long a tick waits for reads before it moves on
    clock: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic
    targets: Targets = field(init=False)
    reconciled: int = 0  # AIScaler rounds run (for /metrics)
    _states: dict[str, ScalerState] = field(default_factory=dict)
    _last_index: CapacityIndex | None = None  # last round's, lending summaries of unchanged nodes
    _in_flight: dict[str, InFlight] = field(default_factory=dict)
    worker: Worker = field(init=False)
    _reads: ThreadPoolExecutor = field(init=False)

    def __post_init__(self) -> None:
        self.targets = Targets(self.kube, pods=self.pods, dra=self.view.dra.lookups)
        self.worker = Worker(self._run, name="aiscaler")
        self._reads = ThreadPoolExecutor(self.metric_workers, thread_name_prefix="aiscaler-read")

    def start(self) -> None:
        self.worker.start()

    def stop(self) -> None:
        self.worker.stop()
        self._reads.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        run_while_leading(
            self.reconcile_due,
            stop=self.worker.stopped,
            interval_seconds=self.tick_seconds,
            is_leader=lambda: self.is_leader() and self.ready(),
            what="aiscaler: round",
        )

    def reconcile_due(self) -> int:
        """Start the round of every AIScaler whose turn has come, and finish every round whose
        metrics are in; returns how many rounds ended. Metric reads run on a bounded pool: this
        tick waits for them up to `round_wait_seconds`, and a round still reading then ends in
        a later tick, while the others go on."""
        now = self.monotonic()
        seen: set[str] = set()
        capacity = RoundCapacity(self)
        done = 0
        for scaler in list(self.scalers()):
            meta = scaler.get("metadata") or {}
            uid = str(meta.get("uid", ""))
            seen.add(uid)
            state = self._states.setdefault(uid, ScalerState())
            generation = int(meta.get("generation") or 0)
            if uid in self._in_flight or (
                now < state.next_due_monotonic and generation == state.generation
            ):
                continue
            state.generation = generation
            started = self.start_round(scaler, state)
            if isinstance(started, InFlight):
                self._in_flight[uid] = started
            else:
                state.next_due_monotonic = now + started
                done += 1
        for uid in set(self._states) - seen:
            del self._states[uid]
        for uid in set(self._in_flight) - seen:
            self._in_flight.pop(uid).reads.cancel()  # the AIScaler is gone
        if self._in_flight:
            wait([f.reads for f in self._in_flight.values()], timeout=self.round_wait_seconds)
        done += self._finish_read(capacity)
        self.reconciled += done
        return done

    def _finish_read(self, capacity: RoundCapacity) -> int:
        done = 0
        for uid, flight in list(self._in_flight.items()):
            if not flight.reads.done():
                continue
            del self._in_flight[uid]
            age_seconds = self.monotonic() - flight.started_monotonic
            if age_seconds > max(2 * flight.spec.polling_interval_seconds, STALE_READ_SECONDS):
                # Read before a leadership gap (no tick ran meanwhile; a read itself ends within
                # its sources' timeouts): too old to act on, so it is read again.
                flight.state.next_due_monotonic = 0.0
                continue
            snapshots = capacity.for_pods(flight.target.template, flight.target.demand)
            self._round(
                flight.scaler,
                flight.state,
                spec=flight.spec,
                target=flight.target,
                pods=flight.pods,
                metrics=flight.reads.result(),
                snapshots=snapshots,
            )
            flight.state.next_due_monotonic = (
                flight.started_monotonic + flight.spec.polling_interval_seconds
            )
            done += 1
        return done

    def start_round(self, scaler: JsonDict, state: ScalerState) -> InFlight | float:
        """Read the spec, the target and its pods, and start reading the metrics; or, when the
        AIScaler cannot act, say why in its status and return the seconds until it tries again."""
        meta = scaler.get("metadata") or {}
        namespace = str(meta.get("namespace"))
        try:
            spec = parse_spec(
                scaler, default_scale_down_window_seconds=(self.scale_down_window_seconds)
            )
        except SpecError as exc:
            self._blocked(scaler, state, "InvalidSpec", f"invalid spec: {exc}")
            return DEFAULT_POLLING_INTERVAL_SECONDS
        try:
            target = self.targets.read(namespace, spec.target_ref)
            rival = self.targets.rival_hpa(namespace, spec.target_ref)
            if rival:
                self._blocked(
                    scaler,
                    state,
                    "ConflictingHPA",
                    f"HorizontalPodAutoscaler {rival} also scales "
                    f"{target.description}; this AIScaler does nothing while it "
                    "exists",
                )
                return spec.polling_interval_seconds
            pods = self.targets.pods(namespace, target.selector)
        except TargetError as exc:
            self._blocked(scaler, state, exc.reason, str(exc))
            return spec.polling_interval_seconds
        state.blocked = None
        reads = self._reads.submit(self.observe, spec.metrics, pods)
        return InFlight(scaler, state, spec, target, pods, reads, self.monotonic())

    def _round(
        self,
        scaler: JsonDict,
        state: ScalerState,
        *,
        spec: ScalerSpec,
        target: Target,
        pods: list[JsonDict],
        metrics: Mapping[str, MetricObservation],
        snapshots: Sequence[NodeSnapshot],
    ) -> None:
        now = self.clock()
        observations = Observations(
            current_replicas=target.replicas,
            pods=tuple(pod_state(p) for p in pods),
            metrics=metrics,
        )
        if state.history is None:
            state.history = History(recommendations=((now, target.replicas),))
        try:
            policy = pod_policy(target.template, self.settings.policy)
        except PolicyError:
            policy = self.settings.policy  # the webhook refuses such pods; place as configured
        placed = sum(1 for p in pods if self._placed(p))
        cold = coldstart.summary(state.cold_starts)
        lead_seconds = cold.p90_seconds if cold is not None else 0.0
        window = open_window(spec.schedule, now_unix_seconds=now, lead_seconds=lead_seconds)
        if window is not None and window.min_replicas > spec.min_replicas:
            spec = replace(spec, min_replicas=min(window.min_replicas, spec.max_replicas))
        if spec.anticipation.enabled and spec.anticipation.seconds is None and cold is not None:
            # Look ahead by the cold start this target's replicas really take.
            spec = replace(spec, anticipation=replace(spec.anticipation, seconds=lead_seconds))
        outcome = evaluate(
            spec,
            observations,
            state.history,
            demand=target.demand,
            snapshots=snapshots,
            placed_replicas=placed,
            now_unix_seconds=now,
            staleness_seconds=self.settings.staleness_seconds,
            policy=policy,
        )
        state.history = outcome.decision.history
        applied = outcome.applied_replicas
        if applied < target.replicas:
            self._rank_for_removal(scaler, pods)
        if applied != target.replicas:
            try:
                self.targets.scale(target, applied)
            except TargetError as exc:
                self._blocked(scaler, state, exc.reason, str(exc))
                return
            state.history = state.history.with_scale(
                now_unix_seconds=now, from_replicas=target.replicas, to_replicas=applied
            )
            state.last_scale_unix_seconds = now
            self._event(
                scaler,
                state,
                "Scaled",
                f"scaled {target.description} from "
                f"{target.replicas} to {applied}: {outcome.limited.message}",
                warning=False,
            )
        self._tell_limit(scaler, state, outcome)
        coldstart.record(state.cold_starts, pods)
        status = round_status(
            outcome,
            observations,
            metrics=spec.metrics,
            applied_replicas=applied,
            generation=int((scaler.get("metadata") or {}).get("generation") or 0),
            last_scale_unix_seconds=state.last_scale_unix_seconds or last_scale(scaler),
            cold_start=coldstart.summary(state.cold_starts),
            schedule=schedule_status(window, lead_seconds=lead_seconds),
        )
        self._write_status(scaler, status)

    def _rank_for_removal(self, scaler: JsonDict, pods: Sequence[JsonDict]) -> None:
        """Before a scale-down: the replicas whose removal frees the most useful GPU memory go
        first (`defrag.py`); only changed costs are written."""
        nodes = {str((p.get("spec") or {}).get("nodeName") or "") for p in pods} - {""}
        costs = deletion_costs(pods, {n: self.view.snapshot(n) for n in nodes})
        changed = changed_costs(pods, costs)
        if changed:
            namespace = str((scaler.get("metadata") or {}).get("namespace"))
            self.targets.set_deletion_costs(namespace, changed)

    def _placed(self, pod: JsonDict) -> bool:
        """Bound, or being bound by this extender (its claim is already in the view)."""
        if (pod.get("spec") or {}).get("nodeName"):
            return True
        return self.view.inflight(str((pod.get("metadata") or {}).get("uid", ""))) is not None

    # -- metrics -------------------------------------------------------------------------------
    def observe(
        self, metrics: Sequence[MetricSpec], pods: Sequence[JsonDict]
    ) -> dict[str, MetricObservation]:
        """A reading per metric whose source answered; a metric absent here holds the scaler."""
        out: dict[str, MetricObservation] = {}
        for metric in metrics:
            try:
                out[metric.name] = self._read(metric, pods)
            except SourceDown as exc:
                log.info("aiscaler: metric %s: %s", metric.name, exc)
        return out

    def _read(self, metric: MetricSpec, pods: Sequence[JsonDict]) -> MetricObservation:
        source = metric.source
        serving = [p for p in pods if pod_state(p).ready and (p.get("status") or {}).get("podIP")]
        if isinstance(source, PodsSource):
            endpoints = [PodEndpoint(pod_name(p), str(p["status"]["podIP"])) for p in serving]
            return MetricObservation(
                per_pod=scrape_pods(
                    endpoints, source=source, timeout_seconds=self.scrape_timeout_seconds
                )
            )
        if isinstance(source, GpuSource):
            uids = {pod_name(p): str((p.get("metadata") or {}).get("uid", "")) for p in serving}
            nodes = {str((p.get("spec") or {}).get("nodeName")) for p in serving}
            reports = [r for r in (self.view.snapshot(n).report for n in nodes) if r]
            return MetricObservation(per_pod=gpu_utilization(uids, reports))
        server = source.server_address or self.prometheus_url
        if not server:
            raise SourceDown(
                "no Prometheus to ask: set the metric's serverAddress or the "
                "extender's --prometheus-url"
            )
        return MetricObservation(total=query_prometheus(server, source.query))

    # -- telling -------------------------------------------------------------------------------
    def _tell_limit(self, scaler: JsonDict, state: ScalerState, outcome: ScalingOutcome) -> None:
        limited = outcome.limited
        now_limit = (limited.reason.value, limited.feasible_replicas) if limited.reason else None
        if now_limit == state.limit:
            return
        if now_limit is not None:
            self._event(
                scaler,
                state,
                "ScalingLimited",
                limited.message,
                warning=limited.reason is LimitReason.INSUFFICIENT_GPU_HEADROOM,
            )
        elif state.limit is not None:
            self._event(scaler, state, "LimitLifted", limited.message, warning=False)
        state.limit = now_limit

    def _blocked(self, scaler: JsonDict, state: ScalerState, reason: str, message: str) -> None:
        if state.blocked != message:
            self._event(scaler, state, reason, message, warning=True)
            state.blocked = message
        previous = scaler.get("status") or {}
        self._write_status(
            scaler,
            blocked_status(
                reason,
                message,
                generation=int((scaler.get("metadata") or {}).get("generation") or 0),
                previous=previous,
            ),
        )

    def _write_status(self, scaler: JsonDict, status: JsonDict) -> None:
        previous: Mapping[str, Any] = scaler.get("status") or {}
        status = with_transitions(status, previous, now_unix_seconds=self.clock())
        if status == previous:
            return
        meta = scaler.get("metadata") or {}
        try:
            api.patch_scaler_status(
                self.kube,
                namespace=str(meta.get("namespace")),
                name=str(meta.get("name")),
                status=status,
            )
        except ApiError as exc:
            log.info(
                "aiscaler %s/%s: cannot write status: %s",
                meta.get("namespace"),
                meta.get("name"),
                exc,
            )

    def _event(
        self, scaler: JsonDict, state: ScalerState, reason: str, message: str, *, warning: bool
    ) -> None:
        meta = scaler.get("metadata") or {}
        body = event(
            scaler, reason=reason, message=message, warning=warning, now_unix_seconds=self.clock()
        )
        log.info("aiscaler %s/%s: %s: %s", meta.get("namespace"), meta.get("name"), reason, message)
        try:
            api.post_event(self.kube, namespace=str(meta.get("namespace")), event=body)
            state.events += 1
        except ApiError as exc:
            log.info("aiscaler: cannot post event: %s", exc)
