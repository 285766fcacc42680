"""Benchmark of the node agent with the fake NVML: 8 GPUs, 16 GPU processes (12 in pods).

Measures, each against a baseline taken in the same run:

1. CPU per sample (in this process, thread CPU time): the full sample (NVML reads through pynvml,
   XID drain, /proc/<pid>/cgroup attribution, report building, the publish decision) against the
   bare NVML reads alone, in blocks of 50 calls, the two legs alternating; the baseline's spread
   is over its blocks. Budget: median <= 2 ms. bench/quick.py times the same two legs.
2. Steady state of the real agent process (`headroom nodeagent`) against a real kube-apiserver,
   over a 60 s window with nothing changing on the GPUs:
   - CPU at 1 s sampling, against the same agent sampling once a minute (its idle cost).
     Budget: <= 1 % of a core.
   - RSS, against a Python process that only imports what the agent imports. Budget: <= 80 MiB.
   - API writes per minute, seen by a watch on the GPUNode, against 60 s / heartbeat.
   CPU is every thread's schedstat time (ns), not /proc/<pid>/stat's 10 ms ticks. The agents run
   at the same time (no alternation needed: one window, shared alike); the idle agent's share is
   also given per 10 s part of the window, for its spread.

The first line printed names the versions the run used (bench/runinfo.py).

Run: `.venv/bin/python -m bench.nodeagent` (about two minutes; needs the control plane binaries
that `make control-plane` builds).
"""

from __future__ import annotations

import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.runinfo import Spread, alternate, percentile, versions_line
from kubeapi.cache import WatchCache, WatchEvent
from kubeapi.client import Kube, load_api_client
from tooling.fakenvml import (
    GIB,
    STATE_ENV,
    FakeDevice,
    FakeNvml,
    FakeProcess,
    agent_env,
    build,
    device,
    pod_cgroup,
    preload,
    write_proc,
)
from tooling.localcluster import LocalCluster, ensure_binaries
from tooling.process import free_port

GPUS = 8
PROCESSES_PER_GPU = 2
SAMPLES = 500
BLOCK = 50  # calls per leg, legs alternating
WINDOW_SECONDS = 60.0
WINDOWS = 6  # parts of the window, for the spread of the CPU shares
WARMUP_SECONDS = 12.0
HEARTBEAT_SECONDS = 30.0
SCRIPT = Path(sys.executable).parent / "headroom"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
# measure, agent, baseline, ratio, budget, within it
Row = tuple[str, str, str, str, str, bool]


def fleet_state(proc_root: Path) -> list[FakeDevice]:
    """8 GPUs, two processes each; three of every four processes are in pods."""
    gpus = []
    for g in range(GPUS):
        processes: list[FakeProcess] = []
        for p in range(PROCESSES_PER_GPU):
            pid = 10_000 + g * PROCESSES_PER_GPU + p
            in_pod = pid % 4 != 0
            cgroup = (
                pod_cgroup(f"00000000-0000-4000-8000-{pid:012d}")
                if in_pod
                else "0::/system.slice/host-inference.service\n"
            )
            write_proc(proc_root, pid, cgroup)
            processes.append({"pid": pid, "used": 3 * GIB})
        gpus.append(device(g, total=80 * GIB, used=7 * GIB, processes=processes))
    return gpus


def cpu_ms(run: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.thread_time_ns()
        run()
        out.append((time.thread_time_ns() - start) / 1e6)
    return out


@dataclass
class SampleLegs:
    """The two calls measure 1 compares: the bare NVML reads and the agent's full sample."""

    bare: Callable[[], object]
    full: Callable[[], object]
    close: Callable[[], None]


def sample_legs(work: Path) -> SampleLegs:
    """The fake NVML preloaded into this process with the fleet's state under `work`; a sampler
    over it, checked once. bench/quick.py times the same legs."""
    from nodeagent.agent import Sampler  # noqa: PLC0415 - after the fake is preloaded
    from nodeagent.cgroups import PodLocator  # noqa: PLC0415
    from nodeagent.nvml import Nvml  # noqa: PLC0415
    from nodeagent.report import publish_reason  # noqa: PLC0415
    from nodeagent.xid import XidHolds  # noqa: PLC0415

    preload(build())
    proc_root = work / "proc"
    state = FakeNvml(work / "inproc.json", {"devices": fleet_state(proc_root)})
    os.environ[STATE_ENV] = str(state.path)
    nvml = Nvml()
    sampler = Sampler("bench", nvml=nvml, locator=PodLocator(proc_root), holds=XidHolds(600))
    first = sampler.sample()
    assert first.healthy and len(first.gpus) == GPUS, first
    assert sum(len(g.pods) for g in first.gpus) == 12, first

    def bare() -> object:
        return nvml.read_devices(), nvml.drain_events()

    def full() -> object:
        report = sampler.sample()
        return publish_reason(
            first,
            report,
            deadband_bytes=256 * 2**20,
            heartbeat_seconds=HEARTBEAT_SECONDS,
            interval_seconds=1.0,
        )

    return SampleLegs(bare, full, sampler.close)


def per_sample(work: Path) -> dict[str, list[list[float]]]:
    """{"bare": [...], "full": [...]}: CPU ms per call, one list per leg of BLOCK calls, the two
    legs alternating so that drift of the machine hits both alike."""
    legs = sample_legs(work)
    try:
        cpu_ms(legs.full, BLOCK)  # warm up both paths
        cpu_ms(legs.bare, BLOCK)
        return alternate(
            {"bare": lambda: cpu_ms(legs.bare, BLOCK), "full": lambda: cpu_ms(legs.full, BLOCK)},
            rounds=SAMPLES // BLOCK,
        )
    finally:
        legs.close()


@dataclass
class ProcStat:
    cpu_seconds: float
    rss_bytes: int
    peak_rss_bytes: int


def proc_stat(pid: int) -> ProcStat:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    status = dict(
        line.split(":", 1)
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if ":" in line
    )
    return ProcStat(
        (utime + stime) / CLK_TCK,
        int(status["VmRSS"].split()[0]) * 1024,
        int(status["VmHWM"].split()[0]) * 1024,
    )


def task_cpu_ns(pid: int) -> int:
    """CPU time of every thread of `pid`, in ns (schedstat's first field; /proc/<pid>/stat counts
    in 10 ms ticks, which read an idle agent's minute as 0 or 1 tick)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except FileNotFoundError:  # a thread that ended between the listing and the read
            continue
    return total


def cpu_windows(pids: dict[str, int]) -> dict[str, tuple[float, list[float]]]:
    """Sleeps WINDOW_SECONDS in WINDOWS equal parts; {name: (its % of a core over the window,
    its % in each part)}: the part's shares are the spread of a steady-state share."""
    part_seconds = WINDOW_SECONDS / WINDOWS
    shares: dict[str, list[float]] = {name: [] for name in pids}
    first = {name: task_cpu_ns(pid) for name, pid in pids.items()}
    before = dict(first)
    started = time.monotonic()
    for _ in range(WINDOWS):
        part_started = time.monotonic()
        time.sleep(part_seconds)
        elapsed_ns = (time.monotonic() - part_started) * 1e9
        for name, pid in pids.items():
            now_ns = task_cpu_ns(pid)
            shares[name].append(100 * (now_ns - before[name]) / elapsed_ns)
            before[name] = now_ns
    window_ns = (time.monotonic() - started) * 1e9
    return {name: (100 * (before[name] - first[name]) / window_ns, shares[name]) for name in pids}


def start_agent(
    cluster: LocalCluster, kube: Kube, *, node: str, interval: float, heartbeat: float, work: Path
) -> subprocess.Popen[bytes]:
    kube.request("POST", "/api/v1/nodes", body={"metadata": {"name": node}})
    proc_root = work / f"proc-{node}"
    state = FakeNvml(work / f"{node}.json", {"devices": fleet_state(proc_root)})
    log = (work / f"{node}.log").open("wb")
    return subprocess.Popen(
        [
            str(SCRIPT),
            "nodeagent",
            "--node-name",
            node,
            "--kubeconfig",
            str(cluster.kubeconfig),
            "--interval-seconds",
            str(interval),
            "--heartbeat-seconds",
            str(heartbeat),
            "--proc-root",
            str(proc_root),
            "--metrics-bind",
            f"127.0.0.1:{free_port()}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=agent_env(build(), state.path),
    )


def steady_state(work: Path) -> dict[str, Any]:
    ensure_binaries()
    with LocalCluster(work / "cluster") as cluster:
        cluster.kubectl(
            "apply",
            "-f",
            str(Path(__file__).resolve().parents[1] / "manifests" / "crds" / "gpunodes.yaml"),
        )
        cluster.kubectl(
            "wait", "--for=condition=Established", "--timeout=60s", "crd/gpunodes.headroom.dev"
        )
        kube = Kube(load_api_client(str(cluster.kubeconfig)))
        writes: list[float] = []
        lock = threading.Lock()

        def seen(event: WatchEvent) -> None:
            if event.object["metadata"]["name"] == "busy" and event.object.get("status"):
                with lock:
                    writes.append(time.monotonic())

        watch = WatchCache(kube, "/apis/headroom.dev/v1alpha1/gpunodes", on_event=seen)
        watch.start()
        busy = start_agent(
            cluster, kube, node="busy", interval=1.0, heartbeat=HEARTBEAT_SECONDS, work=work
        )
        idle = start_agent(cluster, kube, node="idle", interval=60.0, heartbeat=60.0, work=work)
        imports = subprocess.Popen(
            [
                sys.executable,
                "-c",
                (
                    "import nodeagent.agent, nodeagent.cli, cli.main, headroom.report, time; "
                    "time.sleep(600)"
                ),
            ],
            env=agent_env(build(), work / "busy.json"),
        )
        try:
            time.sleep(WARMUP_SECONDS)  # start-up (imports, first write) is not steady state
            window_start = time.monotonic()
            windows = cpu_windows({"busy": busy.pid, "idle": idle.pid})
            after = {p.pid: proc_stat(p.pid) for p in (busy, idle, imports)}
            window_end = time.monotonic()
            assert busy.poll() is None and idle.poll() is None, "an agent exited"
        finally:
            for p in (busy, idle, imports):
                p.terminate()
                p.wait(15)
            watch.stop()
        with lock:
            in_window = [t for t in writes if window_start <= t < window_end]
            gaps = [
                b - a
                for a, b in itertools.pairwise(writes)
                if b >= window_start - HEARTBEAT_SECONDS
            ]
        span = window_end - window_start
        return {
            "busy_cpu_percent": windows["busy"][0],
            "idle_cpu_percent": windows["idle"][0],
            "busy_rss": after[busy.pid].rss_bytes,
            "busy_peak_rss": after[busy.pid].peak_rss_bytes,
            "imports_rss": after[imports.pid].rss_bytes,
            "writes_in_window": len(in_window),
            "window_minutes": span / 60,
            "median_gap": statistics.median(gaps) if gaps else float("nan"),
            "busy_windows": windows["busy"][1],
            "idle_windows": windows["idle"][1],
        }


def sample_rows(runs: dict[str, list[list[float]]]) -> list[Row]:
    """Measure 1: the median and p95 over every call, the baseline's spread over the legs."""
    bare_ms = [ms for leg in runs["bare"] for ms in leg]
    full_ms = [ms for leg in runs["full"] for ms in leg]
    med_bare, med_full = statistics.median(bare_ms), statistics.median(full_ms)
    p95_bare, p95 = percentile(bare_ms, 0.95), percentile(full_ms, 0.95)
    bare_p50s = Spread.of([statistics.median(leg) for leg in runs["bare"]])
    bare_p95s = Spread.of([percentile(leg, 0.95) for leg in runs["bare"]])
    return [
        (
            "CPU per sample, median",
            f"{med_full:.3f} ms",
            f"bare NVML reads {med_bare:.3f} ms; per leg {bare_p50s.describe(' ms', 3)}",
            f"{med_full / med_bare:.2f}x",
            "<= 2 ms",
            med_full <= 2,
        ),
        (
            "CPU per sample, p95",
            f"{p95:.3f} ms",
            f"bare NVML reads {p95_bare:.3f} ms; per leg {bare_p95s.describe(' ms', 3)}",
            f"{p95 / p95_bare:.2f}x",
            "",
            True,
        ),
    ]


def steady_rows(steady: dict[str, Any]) -> list[Row]:
    """Measure 2: the busy and idle agents ran at once, so their baseline's spread is over the
    parts of the one window; the imports-only RSS is read once, the write rate is arithmetic."""
    mib = 2**20
    writes_per_min = steady["writes_in_window"] / steady["window_minutes"]
    expected_writes = 60 / HEARTBEAT_SECONDS
    idle = Spread.of(steady["idle_windows"])
    return [
        (
            "CPU, 1 s sampling, 60 s",
            f"{steady['busy_cpu_percent']:.2f} % of a core",
            f"1/min sampling {steady['idle_cpu_percent']:.3f} %; per "
            f"{WINDOW_SECONDS / WINDOWS:.0f} s {idle.describe(' %', 3, over='parts')}",
            f"{steady['busy_cpu_percent'] / max(steady['idle_cpu_percent'], 0.01):.1f}x",
            "<= 1 %",
            steady["busy_cpu_percent"] <= 1,
        ),
        (
            "RSS",
            f"{steady['busy_rss'] / mib:.1f} MiB (peak {steady['busy_peak_rss'] / mib:.1f})",
            f"imports only {steady['imports_rss'] / mib:.1f} MiB (read once)",
            f"{steady['busy_rss'] / steady['imports_rss']:.2f}x",
            "<= 80 MiB",
            steady["busy_peak_rss"] <= 80 * mib,
        ),
        (
            "API writes/min, no change",
            f"{writes_per_min:.2f} (gap {steady['median_gap']:.1f} s)",
            f"60 s / heartbeat {expected_writes:.2f}",
            f"{writes_per_min / expected_writes:.2f}x",
            f"= {expected_writes:g}",
            abs(writes_per_min - expected_writes) <= 1,
        ),
    ]


def main() -> int:
    print(versions_line())
    with tempfile.TemporaryDirectory(prefix="bench-nodeagent-") as tmp:
        work = Path(tmp)
        runs = per_sample(work)
        steady = steady_state(work)
    rows = sample_rows(runs) + steady_rows(steady)
    print(
        f"node agent, fake NVML: {GPUS} GPUs, {GPUS * PROCESSES_PER_GPU} processes, "
        f"{SAMPLES} samples per leg in blocks of {BLOCK}, legs alternating; "
        f"{WINDOW_SECONDS:.0f} s steady-state window"
    )
    header = ("measure", "agent", "baseline (same run)", "ratio", "budget", "ok")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(5)]
    print(" | ".join(h.ljust(w) for h, w in zip(header, [*widths, 2], strict=True)))
    print("-|-".join("-" * w for w in [*widths, 2]))
    for row in rows:
        cells = [
            *[str(c).ljust(w) for c, w in zip(row[:5], widths, strict=True)],
            "yes" if row[5] else "NO",
        ]
        print(" | ".join(cells))
    return 0 if all(r[5] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
