"""Simulation of the AIScaler against an HPA-equivalent policy on a GPU cluster model.

Replays a bursty load trace (generated deterministically here) in 15 s steps against a cluster
of NodeSnapshots shared with another tenant whose GPU use changes over time. Both policies use
the same pure `decide` (extender.scaler.decision) and the same scheduler model (headroom.fit's
`place_replicas`: Pending replicas are placed, oldest first, whenever they fit):

- HPA: applies the desired count as is; replicas beyond capacity stay Pending.
- AIScaler Enforce: applies `apply_feasibility`'s count (never more than placed + feasible).

The baseline is HPA-equivalent, not HPA: it shares decide's no-scale-up-while-Pending rule, which
only helps it (it stops a Pending cascade), so only feasibility differs between the two columns.

Reports pending-replica-seconds, unmet demand (request-seconds of load above the Ready replicas'
capacity), GPU-hours held, and AIScaler / HPA ratios. Then the cold-start comparison: with a
3-minute cold start, on a tidal and a bursty trace, the seconds the queue is above target and the
GPU-hours of the HPA-equivalent policy, the AIScaler, and the AIScaler with
`coldStart.anticipate` (ratios to the HPA-equivalent). Run: `.venv/bin/python -m bench.scaler_sim`
(`--png PATH` for the plot, default in the temp directory).

A simulation, not a timing: the traces are seeded and nothing is measured by a clock, so every run
prints the same numbers; its legs need no alternation and its baseline has no spread to report.
The first line printed names the versions the run used.
"""

from __future__ import annotations

import argparse
import math
import random
import struct
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from bench.runinfo import versions_line
from extender.scaler.decision import History, MetricObservation, Observations, PodState, decide
from extender.scaler.feasibility import LimitReason, apply_feasibility, feasible_replicas
from extender.scaler.spec import ScalerSpec, parse_spec
from headroom.demand import GpuDemand
from headroom.fit import NodeSnapshot, PodClaim, place_replicas
from headroom.report import GpuState, NodeReport

GI = 2**30
STEP_SECONDS = 15
HOURS = 4
NODES, GPUS_PER_NODE, GPU_GI = 6, 4, 80
DEMAND = GpuDemand(gpu_count=1, memory_bytes=40 * GI)  # one whole 80Gi GPU, 40Gi needed
SLOTS_PER_REPLICA = 10  # concurrent requests one Ready replica serves
STARTUP_SECONDS = 60  # model load: placed -> Ready
COLD_START_SECONDS = 180  # the cold-start comparison: a large model (llm-d reports 2 to 7 min)
STALENESS_SECONDS = 60
SEED = 20261123
SPEC = {
    "deploymentName": "llm",
    "metricType": "queue_depth",
    "targetValue": SLOTS_PER_REPLICA,
    "minReplicas": 1,
    "maxReplicas": NODES * GPUS_PER_NODE,
}


def load_trace(steps: int, seed: int = SEED) -> list[float]:
    """Concurrent requests per step: a daily-ish swell, noise, and bursts that last minutes."""
    rng = random.Random(seed)
    trace, burst, burst_left = [], 0.0, 0
    for step in range(steps):
        hours = step * STEP_SECONDS / 3600
        base = 40 + 30 * math.sin(2 * math.pi * hours / HOURS)
        if burst_left == 0 and rng.random() < 0.02:
            burst, burst_left = rng.uniform(60, 160), rng.randint(8, 40)
        if burst_left:
            burst_left -= 1
        elif burst:
            burst = 0.0
        trace.append(max(0.0, base + burst + rng.gauss(0, 5)))
    return trace


def tidal_trace(steps: int, seed: int = SEED + 2) -> list[float]:
    """A day's tide compressed into the run: a slow swell from 10 to 130 requests and back,
    with noise, and no bursts."""
    rng = random.Random(seed)
    return [
        max(0.0, 70 - 60 * math.cos(2 * math.pi * step / steps) + rng.gauss(0, 3))
        for step in range(steps)
    ]


def tenant_trace(steps: int, seed: int = SEED + 1) -> list[int]:
    """Whole GPUs the other tenant wants per step (it never takes a GPU a replica holds)."""
    rng = random.Random(seed)
    wanted, out = 8, []
    for step in range(steps):
        if step % 40 == 0:  # every 10 minutes the other tenant grows or shrinks
            wanted = rng.choice([4, 8, 12, 16, 18])
        out.append(wanted)
    return out


@dataclass
class Replica:
    uid: str
    gpu_uuid: str | None = None  # None: Pending
    placed_at: float = 0.0


@dataclass
class Totals:
    pending_replica_seconds: float = 0.0
    unmet_request_seconds: float = 0.0
    above_target_seconds: float = 0.0  # time the queue per Ready replica was above the target
    gpu_seconds: float = 0.0
    replicas: list[int] = field(default_factory=list)  # per step, for the plot
    ready: list[int] = field(default_factory=list)
    limited_steps: int = 0  # steps whose ScalingLimited was InsufficientGPUHeadroom
    first_limit: str = ""


class Cluster:
    """The GPUs, the other tenant, and our replicas; snapshots are what fit sees."""

    def __init__(self) -> None:
        self.gpus = [
            (f"node-{n}", f"GPU-{n}-{g}", g) for n in range(NODES) for g in range(GPUS_PER_NODE)
        ]
        self.tenant: set[str] = set()

    def update_tenant(self, wanted: int, replicas: list[Replica]) -> None:
        held = {r.gpu_uuid for r in replicas if r.gpu_uuid}
        keep = [u for _, u, _ in self.gpus if u in self.tenant and u not in held][:wanted]
        free = [u for _, u, _ in reversed(self.gpus) if u not in held and u not in keep]
        self.tenant = set(keep + free[: max(0, wanted - len(keep))])

    def snapshots(self, replicas: list[Replica], now: float) -> list[NodeSnapshot]:
        claims: dict[str, list[PodClaim]] = {}
        node_of = {uuid: node for node, uuid, _ in self.gpus}
        for r in replicas:
            if r.gpu_uuid:
                claims.setdefault(node_of[r.gpu_uuid], []).append(
                    PodClaim(r.uid, DEMAND, (r.gpu_uuid,))
                )
        out = []
        for n in range(NODES):
            name = f"node-{n}"
            gpus = tuple(
                GpuState(
                    index=i,
                    uuid=uuid,
                    model="sim",
                    total_bytes=GPU_GI * GI,
                    used_bytes=70 * GI if uuid in self.tenant else 0,
                    unattributed_bytes=70 * GI if uuid in self.tenant else 0,
                )
                for node, uuid, i in self.gpus
                if node == name
            )
            out.append(NodeSnapshot(name, NodeReport(name, now, gpus), tuple(claims.get(name, []))))
        return out

    def schedule(self, replicas: list[Replica], now: float) -> None:
        pending = [r for r in replicas if r.gpu_uuid is None]
        if not pending:
            return
        placements, _ = place_replicas(
            DEMAND,
            len(pending),
            self.snapshots(replicas, now),
            now_unix_seconds=now,
            staleness_seconds=STALENESS_SECONDS,
        )
        for replica, placement in zip(pending, placements, strict=False):
            replica.gpu_uuid, replica.placed_at = placement.gpu_uuids[0], now


def _ready(r: Replica, now: float, startup_seconds: float = STARTUP_SECONDS) -> bool:
    return r.gpu_uuid is not None and now - r.placed_at >= startup_seconds


def _resize(
    replicas: list[Replica], target: int, serial: list[int], now: float, startup_seconds: float
) -> list[Replica]:
    """ReplicaSet's order: remove Pending first, then not Ready, then the newest."""
    while len(replicas) < target:
        serial[0] += 1
        replicas.append(Replica(f"r{serial[0]}"))
    if len(replicas) > target:
        ranked = sorted(
            replicas,
            key=lambda r: (r.gpu_uuid is not None, _ready(r, now, startup_seconds), -r.placed_at),
        )
        doomed = {r.uid for r in ranked[: len(replicas) - target]}
        replicas = [r for r in replicas if r.uid not in doomed]
    return replicas


def simulate(
    spec: ScalerSpec,
    *,
    enforce: bool,
    load: list[float],
    tenant: list[int],
    startup_seconds: float = STARTUP_SECONDS,
) -> Totals:
    cluster, totals = Cluster(), Totals()
    now, serial = 1_700_000_000.0, [0]
    replicas = [Replica("r0")]
    cluster.schedule(replicas, now - startup_seconds)
    history = History()
    for step, demand in enumerate(load):
        now += STEP_SECONDS
        cluster.update_tenant(tenant[step], replicas)
        pods = tuple(
            PodState(r.uid, ready=_ready(r, now, startup_seconds), pending=r.gpu_uuid is None)
            for r in replicas
        )
        ready = [p.name for p in pods if p.ready]
        share = demand / len(ready) if ready else 0.0
        obs = Observations(
            len(replicas),
            pods,
            {"queue_depth": MetricObservation(per_pod=dict.fromkeys(ready, share))},
        )
        decision = decide(spec, obs, history, now)
        applied = decision.desired_replicas
        if enforce:
            placed = sum(r.gpu_uuid is not None for r in replicas)
            room = feasible_replicas(
                DEMAND,
                cluster.snapshots(replicas, now),
                now_unix_seconds=now,
                staleness_seconds=STALENESS_SECONDS,
                current_placed=placed,
                max_replicas=spec.max_replicas,
            )
            limited = apply_feasibility(decision, room, ready_or_placed=placed, spec=spec)
            applied = limited.applied_replicas
            if limited.reason is LimitReason.INSUFFICIENT_GPU_HEADROOM:
                totals.limited_steps += 1
                totals.first_limit = totals.first_limit or limited.message
        history = decision.history.with_scale(
            now_unix_seconds=now, from_replicas=len(replicas), to_replicas=applied
        )
        replicas = _resize(replicas, applied, serial, now, startup_seconds)
        cluster.schedule(replicas, now)
        ready_now = sum(_ready(r, now, startup_seconds) for r in replicas)
        if demand > ready_now * SLOTS_PER_REPLICA:
            totals.above_target_seconds += STEP_SECONDS
        totals.pending_replica_seconds += STEP_SECONDS * sum(r.gpu_uuid is None for r in replicas)
        totals.unmet_request_seconds += STEP_SECONDS * max(
            0.0, demand - ready_now * SLOTS_PER_REPLICA
        )
        totals.gpu_seconds += STEP_SECONDS * sum(r.gpu_uuid is not None for r in replicas)
        totals.replicas.append(len(replicas))
        totals.ready.append(ready_now)
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument(
        "--png", type=Path, default=Path(tempfile.gettempdir()) / "headroom-scaler-sim.png"
    )
    args = parser.parse_args()
    print(versions_line())
    steps = HOURS * 3600 // STEP_SECONDS
    load, tenant = load_trace(steps), tenant_trace(steps)
    spec = parse_spec({"spec": SPEC})
    hpa = simulate(spec, enforce=False, load=load, tenant=tenant)
    ais = simulate(spec, enforce=True, load=load, tenant=tenant)
    total_demand = sum(load) * STEP_SECONDS
    print(
        f"{HOURS} h in {STEP_SECONDS} s steps; {NODES} nodes x {GPUS_PER_NODE} GPUs of "
        f"{GPU_GI}Gi shared with another tenant; replicas need {DEMAND.describe()}; "
        f"load {total_demand:,.0f} request-seconds"
    )
    rows = [
        ("pending replica-seconds", hpa.pending_replica_seconds, ais.pending_replica_seconds),
        ("unmet demand (request-s)", hpa.unmet_request_seconds, ais.unmet_request_seconds),
        ("GPU-hours held", hpa.gpu_seconds / 3600, ais.gpu_seconds / 3600),
        (
            "replica-hours requested",
            sum(hpa.replicas) * STEP_SECONDS / 3600,
            sum(ais.replicas) * STEP_SECONDS / 3600,
        ),
    ]
    print(f"{'metric':<26}{'HPA-equivalent':>16}{'AIScaler Enforce':>18}{'ratio':>9}")
    for name, base, ours in rows:
        ratio = f"{ours / base:.3f}" if base else ("1.000" if ours == base else "inf")
        print(f"{name:<26}{base:>16,.1f}{ours:>18,.1f}{ratio:>9}")
    unmet_ok = ais.unmet_request_seconds <= 1.05 * hpa.unmet_request_seconds
    print(
        f"target: Enforce pending = 0 ({ais.pending_replica_seconds == 0}), unmet demand "
        f"within 5% of HPA ({unmet_ok})"
    )
    print(
        f"AIScaler: ScalingLimited InsufficientGPUHeadroom in {ais.limited_steps} of {steps} "
        f"steps; first: {ais.first_limit!r}"
    )
    cold_start_table(steps, tenant)
    write_plot(
        args.png,
        load=[d / SLOTS_PER_REPLICA for d in load],
        series=[hpa.replicas, ais.replicas, ais.ready],
    )
    print(
        f"plot: {args.png} (black: load in replicas' worth; red: HPA replicas; "
        "blue: AIScaler replicas; green: AIScaler Ready)"
    )


def cold_start_table(steps: int, tenant: list[int]) -> None:
    """The cold-start comparison: a 3-minute cold start, tidal and bursty load, three policies."""
    plain = parse_spec({"spec": SPEC})
    aware = parse_spec(
        {"spec": {**SPEC, "coldStart": {"anticipate": True, "seconds": COLD_START_SECONDS}}}
    )
    policies = [
        ("HPA-equivalent", plain, False),
        ("AIScaler", plain, True),
        ("AIScaler, cold-start aware", aware, True),
    ]
    print(
        f"\ncold start {COLD_START_SECONDS} s (placed -> Ready); seconds the queue per Ready "
        "replica is above target, and GPU-hours held:"
    )
    print(f"{'trace':<8}{'policy':<28}{'queue above target s':>22}{'GPU-hours':>11}{'ratio':>8}")
    for trace_name, trace in (("tidal", tidal_trace(steps)), ("bursty", load_trace(steps))):
        base: float | None = None
        for name, spec, enforce in policies:
            totals = simulate(
                spec,
                enforce=enforce,
                load=trace,
                tenant=tenant,
                startup_seconds=COLD_START_SECONDS,
            )
            base = totals.above_target_seconds if base is None else base
            ratio = f"{totals.above_target_seconds / base:.2f}" if base else "-"
            print(
                f"{trace_name:<8}{name:<28}{totals.above_target_seconds:>22,.0f}"
                f"{totals.gpu_seconds / 3600:>11,.1f}{ratio:>8}"
            )


# -- a minimal PNG line plot (matplotlib is not a dependency) ----------------------------------
COLOURS = [(0, 0, 0), (220, 40, 40), (40, 80, 220), (40, 160, 60)]


def write_plot(
    path: Path, *, load: list[float], series: list[list[int]], width: int = 960, height: int = 360
) -> None:
    pixels = [[(255, 255, 255)] * width for _ in range(height)]
    lines: list[list[float]] = [load, *[[float(v) for v in s] for s in series]]
    top = max(max(line) for line in lines) or 1.0
    steps = len(load)
    for colour, line in zip(COLOURS, lines, strict=True):
        previous: tuple[int, int] | None = None
        for i, value in enumerate(line):
            x = i * (width - 1) // max(1, steps - 1)
            y = height - 1 - int(value / top * (height - 11))
            if previous is not None:
                for yy in range(min(previous[1], y), max(previous[1], y) + 1):
                    pixels[yy][x] = colour
            pixels[y][x] = colour
            previous = (x, y)
    raw = b"".join(b"\x00" + bytes(c for px in row for c in px) for row in pixels)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


if __name__ == "__main__":
    main()
