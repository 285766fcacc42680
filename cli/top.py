"""`kubectl headroom top`: every GPU by free memory, most free first, with the pods on it.

Each GPU's free memory is the ledger's (`headroom.ledger.gpu_accounts`, as `headroom status`
shows it) over the node's snapshot in the extender's own view (`cli.live`). The pods on a GPU are
the ones its report attributes to it and the ones bound to the node with that GPU named (assigned
at bind, or allocated to their ResourceClaims) that the report does not show yet; each with the
memory it commits there: a shared pod max(declared, used), a pod holding the GPU whole its use.
Pods holding GPUs no one has named yet (the device plugin chose) are listed per node.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from headroom.quantity import format_bytes

if TYPE_CHECKING:
    from cli.live import LiveView
    from headroom.fit import NodeSnapshot
    from headroom.report import GpuState


@dataclass(frozen=True)
class GpuPodRow:
    pod: str  # namespace/name (or the UID when the pod is not known)
    committed_bytes: int
    whole_gpu: bool  # it holds the GPU whole (exclusive, or a pod Headroom does not know)
    reported: bool  # the node agent has seen it on the GPU (False: starting, reserved)


@dataclass(frozen=True)
class TopRow:
    node: str
    gpu: int
    uuid: str
    model: str
    free_bytes: int
    total_bytes: int
    healthy: bool
    health: str  # "" when healthy, else why not
    report_age_seconds: float
    stale: bool
    pods: tuple[GpuPodRow, ...]
    unattributed_bytes: int  # used by processes of no pod


def gather(
    live: LiveView, *, now_unix_seconds: float, staleness_seconds: float, node: str | None = None
) -> tuple[list[TopRow], list[str]]:
    """The rows, most free first (healthy GPUs of fresh reports before the others), and notes:
    unplaced GPUs held by starting pods, reports that cannot be read. `node` keeps one node's
    GPUs (a node without a report is an error)."""
    from cli.cluster import CliError  # noqa: PLC0415

    names = live.reported
    if node is not None:
        if live.view.report(node) is None:
            why = live.view.report_error(node) or f"no GPUNode {node}, or one without a status"
            raise CliError(f"--node {node}: no GPU report for the node ({why})")
        names = [node]
    rows: list[TopRow] = []
    notes: list[str] = []
    for name in names:
        error = live.view.report_error(name)
        if error:
            notes.append(f"{name}: {error}")
        if live.view.report(name) is None:
            continue
        snapshot = live.view.snapshot(name)
        rows += _rows(live, snapshot, now=now_unix_seconds, staleness_seconds=staleness_seconds)
        notes += _unplaced(live, snapshot)
    # An unhealthy GPU's memory, or a stale report's, is free but takes no pod now: those GPUs
    # come after the ones the extender would place on.
    rows.sort(key=lambda r: (not r.healthy or r.stale, -r.free_bytes, r.node, r.gpu))
    return rows, notes


def _rows(
    live: LiveView, snapshot: NodeSnapshot, *, now: float, staleness_seconds: float
) -> list[TopRow]:
    from headroom.ledger import gpu_accounts  # noqa: PLC0415

    report = snapshot.report
    assert report is not None
    age = report.age_seconds(now)
    return [
        TopRow(
            node=snapshot.name,
            gpu=account.gpu.index,
            uuid=account.gpu.uuid,
            model=account.gpu.model,
            free_bytes=account.free_bytes,
            total_bytes=account.gpu.total_bytes,
            healthy=account.gpu.healthy,
            health="" if account.gpu.healthy else account.gpu.reason or "unhealthy",
            report_age_seconds=age,
            stale=age > staleness_seconds,
            pods=_pods_on(live, snapshot, account.gpu),
            unattributed_bytes=account.gpu.unattributed_bytes,
        )
        for account in gpu_accounts(snapshot)
    ]


def _pods_on(live: LiveView, snapshot: NodeSnapshot, gpu: GpuState) -> tuple[GpuPodRow, ...]:
    claims = {c.uid: c for c in snapshot.claims}
    rows = []
    for seen in gpu.pods:
        claim = claims.get(seen.uid)
        shared = claim is not None and claim.demand.shared
        committed = max(claim.demand.memory_bytes, seen.used_bytes) if claim and shared else 0
        who = live.who(seen.uid)
        if who == seen.uid and seen.name:
            who = f"{seen.namespace}/{seen.name}"
        rows.append(GpuPodRow(who, committed or seen.used_bytes, not shared, True))
    on_gpu = {p.uid for p in gpu.pods}
    for claim in snapshot.claims:
        if gpu.uuid in claim.gpu_uuids and claim.uid not in on_gpu:
            shared = claim.demand.shared
            committed = claim.demand.memory_bytes if shared else 0
            rows.append(GpuPodRow(live.who(claim.uid), committed, not shared, False))
    return tuple(sorted(rows, key=lambda r: (-r.committed_bytes, r.pod)))


def _unplaced(live: LiveView, snapshot: NodeSnapshot) -> list[str]:
    """Pods bound to the node holding whole GPUs not named anywhere yet (the ledger's count)."""
    report = snapshot.report
    assert report is not None
    notes = []
    for claim in snapshot.claims:
        seen_on = {g.uuid for g in report.gpus if any(p.uid == claim.uid for p in g.pods)}
        known = set(claim.gpu_uuids)
        unnamed = claim.demand.gpu_count - len(known) - len(seen_on - known)
        if unnamed > 0:
            gpus = "a whole GPU" if unnamed == 1 else f"{unnamed} whole GPUs"
            notes.append(
                f"{snapshot.name}: {live.who(claim.uid)} holds {gpus} the report does not show "
                "yet (the device plugin chose which)"
            )
    return notes


def render(rows: Sequence[TopRow], notes: Sequence[str]) -> str:
    if not rows:
        return "\n".join(["no GPU reports (is the node agent running?)", *notes])
    header = ["NODE", "GPU", "MODEL", "FREE/TOTAL", "HEALTHY", "REPORT-AGE", "PODS"]
    table = [header] + [
        [
            r.node,
            str(r.gpu),
            r.model,
            f"{format_bytes(r.free_bytes)}/{format_bytes(r.total_bytes)}",
            "yes" if r.healthy else f"NO: {r.health}",
            f"{r.report_age_seconds:.0f}s" + (" (stale)" if r.stale else ""),
            _pod_words(r) or "-",
        ]
        for r in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(header) - 1)]
    lines = [
        "  ".join([*(c.ljust(w) for c, w in zip(line, widths, strict=False)), line[-1]])
        for line in table
    ]
    return "\n".join([*lines, *([""] if notes else []), *notes])


def _pod_words(row: TopRow) -> str:
    words = []
    for p in row.pods:
        if p.whole_gpu:
            used = f", {format_bytes(p.committed_bytes)} used" if p.committed_bytes else ""
            what = f"whole GPU{used}"
        else:
            what = format_bytes(p.committed_bytes)
        words.append(f"{p.pod} ({what}{'' if p.reported else ', starting'})")
    if row.unattributed_bytes:
        words.append(f"other processes ({format_bytes(row.unattributed_bytes)})")
    return ", ".join(words)


def as_json(rows: Sequence[TopRow], notes: Sequence[str]) -> dict[str, Any]:
    return {"gpus": [asdict(r) for r in rows], "notes": list(notes)}
