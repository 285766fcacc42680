"""Benchmark of the node agent with the fake NVML: 8 GPUs, 16 GPU processes (12 in pods).

Measures, each against a baseline taken in the same run:

1. CPU per sample (in this process, thread CPU time): the full sample (NVML reads through pynvml,
   XID drain, /proc/<pid>/cgroup attribution, report building, the publish decision) against the
   bare NVML reads alone. Budget: median <= 2 ms.
2. Steady state of the real agent process (`headroom nodeagent`) against a real kube-apiserver,
   over a 60 s window with nothing changing on the GPUs:
   - CPU at 1 s sampling, against the same agent sampling once a minute (its idle cost).
     Budget: <= 1 % of a core.
   - RSS, against a Python process that only imports what the agent imports. Budget: <= 80 MiB.
   - API writes per minute, seen by a watch on the GPUNode, against 60 s / heartbeat.

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
WINDOW_SECONDS = 60.0
WARMUP_SECONDS = 12.0
HEARTBEAT_SECONDS = 30.0
SCRIPT = Path(sys.executable).parent / "headroom"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


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


def per_sample(work: Path) -> tuple[list[float], list[float]]:
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

    cpu_ms(full, 50)  # warm up both paths
    bare_ms, full_ms = [], []
    for _ in range(SAMPLES // 50):  # interleaved, so drift of the machine hits both alike
        bare_ms += cpu_ms(bare, 50)
        full_ms += cpu_ms(full, 50)
    sampler.close()
    return bare_ms, full_ms


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


def steady_state(work: Path) -> dict[str, float]:
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
            before = {p.pid: proc_stat(p.pid) for p in (busy, idle)}
            window_start = time.monotonic()
            time.sleep(WINDOW_SECONDS)
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
            "busy_cpu_percent": 100
            * (after[busy.pid].cpu_seconds - before[busy.pid].cpu_seconds)
            / span,
            "idle_cpu_percent": 100
            * (after[idle.pid].cpu_seconds - before[idle.pid].cpu_seconds)
            / span,
            "busy_rss": after[busy.pid].rss_bytes,
            "busy_peak_rss": after[busy.pid].peak_rss_bytes,
            "imports_rss": after[imports.pid].rss_bytes,
            "writes_in_window": len(in_window),
            "window_minutes": span / 60,
            "median_gap": statistics.median(gaps) if gaps else float("nan"),
        }


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-nodeagent-") as tmp:
        work = Path(tmp)
        bare_ms, full_ms = per_sample(work)
        steady = steady_state(work)
    mib = 2**20
    med_bare, med_full = statistics.median(bare_ms), statistics.median(full_ms)
    p95 = statistics.quantiles(full_ms, n=20)[-1]
    p95_bare = statistics.quantiles(bare_ms, n=20)[-1]
    writes_per_min = steady["writes_in_window"] / steady["window_minutes"]
    expected_writes = 60 / HEARTBEAT_SECONDS
    rows = [
        (
            "CPU per sample, median",
            f"{med_full:.3f} ms",
            f"bare NVML reads {med_bare:.3f} ms",
            f"{med_full / med_bare:.2f}x",
            "<= 2 ms",
            med_full <= 2,
        ),
        (
            "CPU per sample, p95",
            f"{p95:.3f} ms",
            f"bare NVML reads {p95_bare:.3f} ms",
            f"{p95 / p95_bare:.2f}x",
            "",
            True,
        ),
        (
            "CPU, 1 s sampling, 60 s",
            f"{steady['busy_cpu_percent']:.2f} % of a core",
            f"1/min sampling {steady['idle_cpu_percent']:.2f} %",
            f"{steady['busy_cpu_percent'] / max(steady['idle_cpu_percent'], 0.01):.1f}x",
            "<= 1 %",
            steady["busy_cpu_percent"] <= 1,
        ),
        (
            "RSS",
            f"{steady['busy_rss'] / mib:.1f} MiB (peak {steady['busy_peak_rss'] / mib:.1f})",
            f"imports only {steady['imports_rss'] / mib:.1f} MiB",
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
    print(
        f"node agent, fake NVML: {GPUS} GPUs, {GPUS * PROCESSES_PER_GPU} processes, "
        f"{SAMPLES} samples; {WINDOW_SECONDS:.0f} s steady-state window"
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
