"""The node agent: sample NVML every interval, attribute processes to pods, publish the GPUNode.

`Sampler.sample()` never raises: NVML unusable is a report with the node unhealthy, and
initialisation is retried with backoff from the next samples on. `run_agent` is the long-running
process (sampler on the main thread; publisher, device tainter and HTTP server on their own);
`sample_once` is `--once`. NVML is initialised here, at run time, never at import.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from headroom.backoff import Backoff
from headroom.dra import DEFAULT_GPU_DRIVERS
from headroom.report import GpuState, NodeReport
from kubeapi.client import Kube, load_api_client
from nodeagent.cgroups import PodLocator
from nodeagent.metrics import AgentStatus, MetricsServer, create_app
from nodeagent.nvml import Nvml, NvmlUnavailable
from nodeagent.publisher import GpuNodeWriter, Publisher
from nodeagent.readings import DeviceReading, XidEvent
from nodeagent.report import build_report, unavailable_report
from nodeagent.tainter import DeviceTainter
from nodeagent.taints import OFF
from nodeagent.xid import CRITICAL_XIDS, XidHolds

log = logging.getLogger(__name__)

INIT_RETRY_INITIAL_SECONDS = 2.0
INIT_RETRY_MAX_SECONDS = 60.0


class StartupError(Exception):
    """The agent cannot start (no cluster configuration, the metrics port taken)."""


@dataclass(frozen=True)
class AgentConfig:
    node_name: str
    interval_seconds: float = 5.0
    heartbeat_seconds: float = 30.0
    deadband_bytes: int = 256 * 2**20
    proc_root: Path = Path("/proc")
    xid_hold_seconds: float = 600.0
    metrics_host: str = "0.0.0.0"  # noqa: S104 - a DaemonSet pod's port, scraped from outside
    metrics_port: int = 9410
    kubeconfig: str | None = None
    device_taints: str = OFF  # or the effect of the DeviceTaintRules: NoSchedule, NoExecute
    gpu_drivers: tuple[str, ...] = DEFAULT_GPU_DRIVERS


class Sampler:
    """NVML + /proc + XID holds -> one NodeReport per call."""

    def __init__(
        self,
        node_name: str,
        *,
        nvml: Nvml,
        locator: PodLocator,
        holds: XidHolds,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.node_name = node_name
        self.nvml = nvml
        self.locator = locator
        self.holds = holds
        self._clock = clock
        self._monotonic = monotonic
        self._known: dict[int, GpuState] = {}  # the last good reading per index
        self._init_backoff = Backoff(
            initial_seconds=INIT_RETRY_INITIAL_SECONDS, max_seconds=INIT_RETRY_MAX_SECONDS
        )
        self._next_init = 0.0
        self.unavailable_reason = ""
        # Critical XIDs seen per GPU UUID (for /metrics), counted whatever the hold period.
        # Replaced whole, never changed in place: the HTTP threads read it without a lock.
        self.critical_xids: dict[str, int] = {}

    def sample(self) -> NodeReport:
        now = self._clock()
        try:
            self._ensure_open()
            readings = self.nvml.read_devices()
            events = self.nvml.drain_events()
        except NvmlUnavailable as exc:
            self._unavailable(str(exc))
            return unavailable_report(
                self.node_name, self.unavailable_reason, now_unix_seconds=now, known=self._known
            )
        if self.unavailable_reason:
            log.info("NVML readable again (driver %s)", self.nvml.driver_version or "unknown")
            self.unavailable_reason = ""
            self._init_backoff.reset()
        self._record_xids(readings, events, now)
        pods: dict[int, str | None] = {}

        def pod_of(pid: int) -> str | None:
            if pid not in pods:  # a process on several GPUs is looked up once per sample
                pods[pid] = self.locator.pod_uid(pid)
            return pods[pid]

        report = build_report(
            self.node_name,
            readings,
            now_unix_seconds=now,
            pod_of=pod_of,
            holds=self.holds,
            known=self._known,
        )
        self._remember(readings, report)
        return report

    def _record_xids(
        self, readings: list[DeviceReading], events: list[XidEvent], now: float
    ) -> None:
        uuids = {
            r.index: r.uuid or (self._known[r.index].uuid if r.index in self._known else "")
            for r in readings
        }
        for event in events:
            uuid = uuids.get(event.index, "")
            if uuid and event.xid in CRITICAL_XIDS:
                self.critical_xids = {
                    **self.critical_xids,
                    uuid: self.critical_xids.get(uuid, 0) + 1,
                }
            if uuid and self.holds.record(uuid, event.xid, now_unix_seconds=now):
                log.warning("GPU %d (%s): critical XID %d", event.index, uuid, event.xid)

    def _remember(self, readings: list[DeviceReading], report: NodeReport) -> None:
        """Keep the last good state of each GPU present now; forget GPUs that are gone."""
        known = {}
        for reading, gpu in zip(readings, report.gpus, strict=True):
            if not reading.error:
                known[gpu.index] = gpu
            elif gpu.index in self._known:
                known[gpu.index] = self._known[gpu.index]
        self._known = known

    def _ensure_open(self) -> None:
        if self.nvml.ready:
            return
        if self._monotonic() < self._next_init:
            raise NvmlUnavailable(self.unavailable_reason)
        self.nvml.open()
        log.info("NVML initialised (driver %s)", self.nvml.driver_version or "unknown")

    def _unavailable(self, reason: str) -> None:
        if self.nvml.ready:  # it broke while open: start over with a fresh session
            self.nvml.close()
        if reason != self.unavailable_reason:
            log.warning("NVML unavailable: %s", reason)
        self.unavailable_reason = reason
        if self._monotonic() >= self._next_init:
            self._next_init = self._monotonic() + self._init_backoff.next_delay()

    def close(self) -> None:
        self.nvml.close()


def make_sampler(config: AgentConfig) -> Sampler:
    return Sampler(
        config.node_name,
        nvml=Nvml(),
        locator=PodLocator(config.proc_root),
        holds=XidHolds(config.xid_hold_seconds),
    )


def sample_once(config: AgentConfig) -> NodeReport:
    sampler = make_sampler(config)
    try:
        return sampler.sample()
    finally:
        sampler.close()


def run_agent(config: AgentConfig, stop: threading.Event) -> int:
    """Run until `stop` is set. Returns the exit status; API errors never end it."""
    try:
        kube = Kube(load_api_client(config.kubeconfig))
    except Exception as exc:  # the client's ConfigException, a broken file: nothing to run with
        raise StartupError(f"cannot load the cluster configuration: {exc}") from exc
    publisher = Publisher(
        GpuNodeWriter(kube, config.node_name).write,
        deadband_bytes=config.deadband_bytes,
        heartbeat_seconds=config.heartbeat_seconds,
        interval_seconds=config.interval_seconds,
    )
    tainter = None
    if config.device_taints != OFF:
        tainter = DeviceTainter(
            kube,
            config.node_name,
            effect=config.device_taints,
            drivers=config.gpu_drivers,
            resync_seconds=config.heartbeat_seconds,
        )
    sampler = make_sampler(config)
    status = AgentStatus(
        interval_seconds=config.interval_seconds,
        heartbeat_seconds=config.heartbeat_seconds,
        publish_stats=lambda: publisher.stats,
        node_name=config.node_name,
        critical_xids=lambda: sampler.critical_xids,
    )
    if tainter is not None:
        running = tainter
        status.taint_stats = lambda: running.stats
    try:
        server = MetricsServer(
            create_app(status), host=config.metrics_host, port=config.metrics_port
        ).start()
    except OSError as exc:
        sampler.close()
        raise StartupError(
            f"--metrics-bind: cannot listen on {config.metrics_host}:{config.metrics_port}: {exc}"
        ) from exc
    log.info(
        "node agent for %s: sampling every %gs, heartbeat %gs, metrics on %s:%d, device taints %s",
        config.node_name,
        config.interval_seconds,
        config.heartbeat_seconds,
        config.metrics_host,
        server.port,
        config.device_taints,
    )
    publisher.start()
    if tainter is not None:
        tainter.start()
    try:
        next_tick = time.monotonic()
        while not stop.is_set():
            try:
                report = sampler.sample()
            except Exception:  # a bug, not NVML (that is a report): log it, keep the agent up
                log.exception("sampling failed")
            else:
                status.sampled(report)
                publisher.offer(report)
                if tainter is not None:
                    tainter.offer(report)
            # A fixed rate; after a stall (a suspended VM) it resumes instead of catching up.
            next_tick = max(next_tick + config.interval_seconds, time.monotonic())
            stop.wait(next_tick - time.monotonic())
    finally:
        if tainter is not None:
            tainter.stop()
        publisher.stop()
        server.stop()
        sampler.close()
    log.info("node agent for %s stopped", config.node_name)
    return 0
