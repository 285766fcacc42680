"""Benchmark of the real kube-scheduler placing pods with and without the extender (issue #15).

For each node count (default: 500 and 5,000 Node objects, each with its GPUNode report), one local
control plane (tooling/localcluster.py, the Kubernetes that tooling/controlplane/versions.env
names) runs these schedulers side by side, as a Headroom install runs beside a cluster's own:

- `headroom`: the shipped profile (manifests/extender/kube-scheduler-config.yaml) calling
  `headroom extender` under gunicorn, started with the shipped Deployment's flags (its access log
  on; to a file);
- `stock`: a default KubeSchedulerConfiguration, its API client's rate limit raised (qps and burst
  1,000): the default (50/s after a burst of 100) would cap the stock leg's binds alone, since the
  headroom profile binds through the extender's own client. `--default-qps` adds the leg
  `stock, qps 50` with that default, as a cluster's own scheduler runs.

Every leg runs `--rounds` batches, in turn (AB BA ..., bench/runinfo.alternate): `--pods` pods
created from four threads in a namespace of the batch's own while the leg's kube-scheduler is
stopped (SIGSTOP, 6 s at most), timed from its resuming with them queued to the last pod a watch
sees bound: the scheduler's own pace, not the API server's pace of creates (which on a busy
machine is slower, and would cap both legs alike). `--no-hold` times from the first create, the
scheduler running. The schedulers stay up throughout: an idle one only follows the other legs'
pods through its informers, as it would in a cluster, whereas starting one per batch would time
its cache sync and cold first cycles. Per batch, the schedulers' and the extender's /metrics
and every process's CPU time are read before and after. `--variant FLAGS` adds a headroom leg
whose extender runs with extra flags (restarted, and warmed up, when its turn comes): how a
serving setting is measured against the shipped one in the same run.

Printed per node count: pods/s per leg (median, range over rounds) and the median of the rounds'
ratios; CPU per pod by process; the scheduler's cycle from its own metrics (scheduling algorithm
and attempt durations); and the extender's added time per pod split into filter, prioritize and
bind, from one more headroom batch with the loopback tapped (bench/scheduler_wire.py; kube-scheduler
keeps no metric per extender call): each verb as the scheduler waits on it, as gunicorn served it
(the access log) and as the extender's own histogram timed it.

`--pin` runs the control plane (etcd, kube-apiserver, kube-controller-manager, the schedulers) on
CPU 0 and Headroom's extender and this client on CPU 1, in every leg alike: as separate machines,
sharing nothing (the Nodes are made before pinning, on both CPUs). With `--beside-extender`,
headroom's kube-scheduler runs on CPU 1 instead, beside its extender, as the shipped Deployment
runs the two in one pod. Run: `.venv/bin/python -m
bench.scheduler [--pin] [--nodes 500 5000] [--pods N] [--rounds K]` (builds or uses the cached
control plane).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import shlex
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import scheduler_report as report
from bench.extender_cluster import add_nodes, extender_process, run_batch, wait_leading
from bench.runinfo import alternate, versions_line
from bench.scheduler_metrics import Histogram, Samples, counter, cpu_seconds, histogram, parse
from bench.scheduler_report import Round
from bench.scheduler_wire import LoopbackTap
from headroom import names
from kubeapi.client import Kube, load_api_client
from tooling import shipped
from tooling.localcluster import KUBERNETES_VERSION, LocalCluster, ensure_binaries
from tooling.process import free_port, secure_get

CONTROL_PLANE_CPU, HEADROOM_CPU = 0, 1
MANIFESTS = Path(__file__).resolve().parents[1] / "manifests"
STOCK, STOCK_QPS50, HEADROOM = "stock", "stock, qps 50", "headroom"
WARM_UP_PODS = 50
IDLE_SECONDS = 5.0


@dataclass
class Leg:
    """The scheduler a leg's batches go to; for a headroom leg, its extender's extra flags."""

    label: str
    scheduler_name: str
    scheduler_pid: int
    metrics_port: int
    extender_args: tuple[str, ...] | None = None


@dataclass
class Cluster:
    """The running cluster, its legs, and the extender the headroom legs share (restarted with
    other flags when a variant leg's turn comes). `pids` names the processes whose CPU counts."""

    kube: Kube
    local: LocalCluster
    legs: dict[str, Leg]
    extender_port: int
    pids: dict[str, tuple[int, bool]] = field(default_factory=dict)  # label: (pid, children too)
    idle_cpu_per_second: dict[str, float] = field(default_factory=dict)
    batches: Iterator[int] = field(default_factory=itertools.count)
    extender_args: tuple[str, ...] | None = None
    hold: bool = True  # each leg's scheduler stopped while its batch's pods are created
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def use_extender(self, args: tuple[str, ...], *, lead: bool = True) -> None:
        """The extender running with `args`: a new one if it ran with others, warmed up with a
        few pods once it leads (unless `lead` is false: the scheduler is not up yet)."""
        if self.extender_args == args:
            return
        self.stack.close()
        self.stack = contextlib.ExitStack()
        extender = self.stack.enter_context(
            extender_process(
                self.local,
                port=self.extender_port,
                extra_args=args,
                log_path=self.local.workdir / "extender.log",
            )
        )
        self.pids["extender"] = (extender.pid, True)
        self.extender_args = args
        if lead:
            wait_leading(self.extender_port)
            run_batch(
                self.kube,
                scheduler_name=names.SCHEDULER_NAME,
                namespace=f"warm-{next(self.batches)}",
                pods=WARM_UP_PODS,
            )


def stock_config(scheduler_name: str, *, qps: int | None) -> dict[str, Any]:
    config: dict[str, Any] = {
        "apiVersion": "kubescheduler.config.k8s.io/v1",
        "kind": "KubeSchedulerConfiguration",
        "leaderElection": {"leaderElect": False},
        "profiles": [{"schedulerName": scheduler_name}],
    }
    if qps is not None:
        config["clientConnection"] = {"qps": qps, "burst": qps}
    return config


@dataclass(frozen=True)
class Options:
    pods: int
    rounds: int
    pin: bool
    # Pinned, headroom's kube-scheduler on CPU 1 beside its extender (one pod in the Deployment)
    # rather than on CPU 0 with the control plane.
    beside_extender: bool = False
    hold: bool = True  # time each batch from its scheduler resuming with the pods queued
    default_qps: bool = False  # also the `stock, qps 50` leg
    variant: tuple[str, ...] | None = None  # also a headroom leg with these extender flags


@contextlib.contextmanager
def cluster_with_legs(node_count: int, options: Options) -> Iterator[Cluster]:
    ensure_binaries()
    with LocalCluster(Path(tempfile.mkdtemp(prefix="bench-scheduler-"))) as local:
        kube = Kube(load_api_client(str(local.kubeconfig)))
        local.kubectl(
            "apply", "-f", str(MANIFESTS / "crds"), "-f", str(MANIFESTS / "namespace.yaml")
        )
        local.kubectl(
            "wait", "--for=condition=Established", "--timeout=60s", "crd/gpunodes.headroom.dev"
        )
        add_nodes(kube, node_count)  # on every CPU: only the setup, it need not be pinned
        if options.pin:
            pin_processes([p.pid for p in local.processes.values()], {CONTROL_PLANE_CPU})
            local.cpus = frozenset({CONTROL_PLANE_CPU})  # the schedulers started from here on
        cluster = Cluster(
            kube=kube, local=local, legs={}, extender_port=free_port(), hold=options.hold
        )
        stock = local.start_scheduler(stock_config("stock", qps=1000), name="stock-scheduler")
        cluster.legs[STOCK] = Leg(STOCK, "stock", stock.pid, _port(stock.port))
        if options.default_qps:
            qps50 = local.start_scheduler(stock_config("stock-qps50", qps=None), name="qps50")
            cluster.legs[STOCK_QPS50] = Leg(
                STOCK_QPS50, "stock-qps50", qps50.pid, _port(qps50.port)
            )
        with cluster.stack:
            # As the Deployment runs it: its flags only, its access log on (to a file).
            cluster.use_extender((), lead=False)
            headroom = local.start_scheduler(
                shipped.scheduler_config(
                    extender_url=f"http://127.0.0.1:{cluster.extender_port}",
                    kubeconfig=local.kubeconfig,
                ),
                name="headroom-scheduler",
            )
            if options.pin and options.beside_extender:
                pin_processes([headroom.pid], {HEADROOM_CPU})
            wait_leading(cluster.extender_port)
            pid, port = headroom.pid, _port(headroom.port)
            cluster.legs[HEADROOM] = Leg(HEADROOM, names.SCHEDULER_NAME, pid, port, ())
            if options.variant is not None:
                label = f"headroom {' '.join(options.variant)}"
                cluster.legs[label] = Leg(label, names.SCHEDULER_NAME, pid, port, options.variant)
            cluster.pids |= {name: (p.pid, False) for name, p in local.processes.items()}
            cluster.pids["client"] = (os.getpid(), False)
            yield cluster
            cluster.stack.close()


def pin_processes(pids: list[int], cpus: set[int]) -> None:
    """Every thread of these processes onto `cpus` (threads they start later inherit it)."""
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(ProcessLookupError):
                os.sched_setaffinity(int(task.name), cpus)


def _port(port: int | None) -> int:
    if port is None:
        raise RuntimeError("the scheduler serves no metrics port")
    return port


def scrape_scheduler(leg: Leg) -> Samples:
    return parse(secure_get(leg.metrics_port, "/metrics").decode())


def scrape_extender(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return parse(response.read().decode())


def cpu_snapshot(cluster: Cluster) -> dict[str, float]:
    return {name: cpu_seconds(pid, children=kids) for name, (pid, kids) in cluster.pids.items()}


def measure_idle(cluster: Cluster) -> None:
    """Each process's CPU per second with no batch running (leases, resyncs, the schedulers'
    and controllers' timers): subtracted from a batch's CPU for the time the batch took, so
    that a slower leg is not charged more per pod for merely lasting longer."""
    before = cpu_snapshot(cluster)
    time.sleep(IDLE_SECONDS)  # a measuring interval, not a wait for anything
    after = cpu_snapshot(cluster)
    cluster.idle_cpu_per_second = {n: (after[n] - before[n]) / IDLE_SECONDS for n in after}


def measure(cluster: Cluster, leg: Leg, pods: int) -> Round:
    """One batch of `pods` for `leg`, with what it added to the metrics and CPU times."""
    if leg.extender_args is not None:
        cluster.use_extender(leg.extender_args)
    namespace = f"bench-{leg.scheduler_name}-{next(cluster.batches)}"
    port = cluster.extender_port if leg.extender_args is not None else None
    scheduler_before = scrape_scheduler(leg)
    extender_before = scrape_extender(port) if port else {}
    cpu_before, started = cpu_snapshot(cluster), time.monotonic()
    batch = run_batch(
        cluster.kube,
        scheduler_name=leg.scheduler_name,
        namespace=namespace,
        pods=pods,
        hold_pid=leg.scheduler_pid if cluster.hold else None,
    )
    cpu_after, wall_seconds = cpu_snapshot(cluster), time.monotonic() - started
    scheduler_after = scrape_scheduler(leg)
    verbs: dict[str, Histogram] = {}
    if port:
        extender_after = scrape_extender(port)
        for verb in report.VERBS:
            verbs[verb] = histogram(
                extender_before, extender_after, "headroom_extender_verb_seconds", verb=verb
            )

    def cpu_ms_per_pod(name: str) -> float:
        idle = cluster.idle_cpu_per_second.get(name, 0.0) * wall_seconds
        return 1000 * (cpu_after[name] - cpu_before[name] - idle) / pods

    attempts = "scheduler_schedule_attempts"
    return Round(
        leg=leg.label,
        batch=batch,
        cycle=histogram(
            scheduler_before, scheduler_after, "scheduler_scheduling_algorithm_duration_seconds"
        ),
        attempt=histogram(
            scheduler_before,
            scheduler_after,
            "scheduler_scheduling_attempt_duration_seconds",
            result="scheduled",
        ),
        unscheduled=counter(scheduler_before, scheduler_after, attempts)
        - counter(scheduler_before, scheduler_after, attempts, result="scheduled"),
        cpu_ms_per_pod={name: cpu_ms_per_pod(name) for name in cpu_after if name in cpu_before},
        verbs=verbs,
    )


def run_node_count(node_count: int, options: Options) -> report.NodeCountResult:
    started = time.monotonic()
    with cluster_with_legs(node_count, options) as cluster:
        setup_seconds = time.monotonic() - started
        for leg in cluster.legs.values():  # warm: caches, connections, the first cycles
            measure(cluster, leg, WARM_UP_PODS)
        cluster.use_extender(())
        measure_idle(cluster)
        legs: dict[str, Callable[[], Round]] = {
            label: _leg_batch(cluster, leg, options.pods) for label, leg in cluster.legs.items()
        }
        results = alternate(legs, rounds=options.rounds)
        traced = traced_batch(cluster, options.pods)
    return report.NodeCountResult(
        node_count=node_count,
        cpus=cpu_layout(options),
        pods=options.pods,
        rounds=results,
        traced=traced,
        idle_cpu_per_second=cluster.idle_cpu_per_second,
        setup_seconds=setup_seconds,
        total_seconds=time.monotonic() - started,
    )


def cpu_layout(options: Options) -> str:
    if not options.pin:
        return "shared"
    if options.beside_extender:
        return "pinned, headroom's kube-scheduler beside its extender"
    return "pinned"


def _leg_batch(cluster: Cluster, leg: Leg, pods: int) -> Callable[[], Round]:
    return lambda: measure(cluster, leg, pods)


def traced_batch(cluster: Cluster, pods: int) -> report.Traced:
    """One more batch of the shipped headroom leg with the loopback tapped, and the extender's
    access log read for gunicorn's own time per request; no wire times without CAP_NET_RAW."""
    leg = cluster.legs[HEADROOM]
    cluster.use_extender(())
    log_path = cluster.local.workdir / "extender.log"
    offset = log_path.stat().st_size
    tap = LoopbackTap(cluster.extender_port)
    try:
        tap.start()
    except PermissionError as exc:
        print(f"(no loopback tap, so no wire times: {exc})", file=sys.stderr)
        traced = measure(cluster, leg, pods)
        return report.Traced(traced, None, 0, gunicorn_ms(log_path, offset))
    try:
        traced = measure(cluster, leg, pods)
    finally:
        exchanges = tap.stop()
    return report.Traced(traced, exchanges, tap.dropped, gunicorn_ms(log_path, offset))


def gunicorn_ms(log_path: Path, offset: int) -> dict[str, list[float]]:
    """{verb: gunicorn's time for each request} from the access log written after `offset`:
    from the request's headers parsed to its response written."""
    found: dict[str, list[float]] = {verb: [] for verb in report.VERBS}
    with log_path.open("rb") as log:
        log.seek(offset)
        for line in log:
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                verb = str(entry.get("path", "")).strip("/")
                if entry.get("logger") == "gunicorn.access" and verb in found:
                    found[verb].append(float(entry["duration_ms"]))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--nodes",
        type=int,
        nargs="+",
        default=[500, 5000],
        help="Node objects, one cluster each (default: 500 5000)",
    )
    parser.add_argument("--pods", type=int, default=200, help="pods per batch (default: 200)")
    parser.add_argument("--rounds", type=int, default=4, help="batches per leg (default: 4)")
    parser.add_argument(
        "--pin",
        action="store_true",
        help="control plane on CPU 0, the extender and this client on CPU 1",
    )
    parser.add_argument(
        "--beside-extender",
        action="store_true",
        help="with --pin: headroom's kube-scheduler on CPU 1 with its extender, as the "
        "Deployment runs them in one pod (default: on CPU 0 with the control plane)",
    )
    parser.add_argument(
        "--no-hold",
        action="store_true",
        help="time each batch from its first create, the scheduler running meanwhile "
        "(default: the scheduler stopped while the pods are created, timed from its resuming)",
    )
    parser.add_argument(
        "--default-qps",
        action="store_true",
        help="one more leg: the stock scheduler with its client's default rate limit (qps 50)",
    )
    parser.add_argument(
        "--variant",
        metavar="FLAGS",
        help="one more leg: the headroom profile with the extender started with these extra "
        "flags (say '--threads=16'), restarted when its turn comes",
    )
    args = parser.parse_args(argv)
    for flag, value in (("--pods", args.pods), ("--rounds", args.rounds)):
        if value < 1:
            parser.error(f"{flag}: expected a whole number of at least 1 (got {value})")
    if args.beside_extender and not args.pin:
        parser.error("--beside-extender: only with --pin")
    if args.pin:
        if len(os.sched_getaffinity(0) & {CONTROL_PLANE_CPU, HEADROOM_CPU}) < 2:
            parser.error("--pin: needs CPUs 0 and 1")
        os.sched_setaffinity(0, {HEADROOM_CPU})  # this client, and the extender it starts
    options = Options(
        pods=args.pods,
        rounds=args.rounds,
        pin=args.pin,
        beside_extender=args.beside_extender,
        hold=not args.no_hold,
        default_qps=args.default_qps,
        variant=tuple(shlex.split(args.variant)) if args.variant else None,
    )
    print(versions_line(extra={"Kubernetes": KUBERNETES_VERSION}))
    for node_count in args.nodes:
        result = run_node_count(node_count, options)
        print(report.render(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
