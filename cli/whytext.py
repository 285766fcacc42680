"""How `kubectl headroom why` says it: the table of nodes, the one-line summary, and the JSON.

Pure: works on `cli.why`'s Explanation.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from headroom.quantity import format_bytes

if TYPE_CHECKING:
    from cli.why import Explanation, NodeVerdict
    from headroom.demand import GpuDemand

DEFAULT_SHOWN = 10


def render(explanation: Explanation, *, all_nodes: bool = False) -> str:
    """The pod's state; for a pending pod, its demand, the nodes best first and the summary."""
    from cli.why import PENDING  # noqa: PLC0415

    lines = [explanation.headline]
    if explanation.demand is not None:
        lines.append(f"demand: {_demand_words(explanation.demand)} (policy {explanation.policy})")
    lines += explanation.notes
    if explanation.state != PENDING:
        return "\n".join(lines)
    nodes = list(explanation.nodes)
    shown = nodes if all_nodes else nodes[:DEFAULT_SHOWN]
    lines.append("")
    if shown:
        lines += _table(shown)
    rest = len(nodes) - len(shown)
    if rest:
        lines.append(f"... and {rest} more {_nodes(rest)} (--all-nodes shows every node)")
    lines += ["", explanation.summary]
    if any(v.fits for v in nodes) and any(n.startswith("the scheduler said") for n in lines):
        lines.append(
            "Headroom has room for it now: what keeps it pending is another filter (the "
            "scheduler's message above), or the scheduler has not tried again yet"
        )
    return "\n".join(lines)


def _table(verdicts: Sequence[NodeVerdict]) -> list[str]:
    rows = [["NODE", "FITS", "SCORE", "GPUS / REASON"]]
    for v in verdicts:
        if v.fits:
            detail = ", ".join(
                f"GPU {g.index} ({g.uuid})" if g.index is not None else g.uuid for g in v.gpus
            )
            detail = detail or "the DRA allocator chooses the GPU"
        elif v.kind == "scheduler":
            detail = f"not asked: {v.reason}"
        else:
            detail = v.reason
        score = str(v.score) if v.score is not None else "-"
        rows.append([v.node, "yes" if v.fits else "no", score, detail])
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return ["  ".join([*(c.ljust(w) for c, w in zip(r, widths, strict=False)), r[3]]) for r in rows]


def _demand_words(demand: GpuDemand) -> str:
    words = demand.describe()
    if demand.shared:
        words += ", shared"
    if demand.dra:
        words += ", through DRA ResourceClaims"
    return words


def _nodes(count: int) -> str:
    return "node" if count == 1 else "nodes"


def _lacking(demand: GpuDemand) -> str:
    """What a node short of memory lacks, in the demand's terms."""
    if demand.all_gpus:
        return "not every GPU free" + (
            f" with {format_bytes(demand.memory_bytes)}" if demand.memory_bytes else ""
        )
    with_memory = f" with {format_bytes(demand.memory_bytes)} free" if demand.memory_bytes else ""
    if demand.gpu_count == 1:
        return f"no GPU{with_memory}" if with_memory else "no free GPU"
    return f"fewer than {demand.gpu_count} {'GPUs' + with_memory if with_memory else 'free GPUs'}"


def _phrase(kind: str, count: int, demand: GpuDemand) -> str:
    one = count == 1
    have = "has" if one else "have"
    phrases = {
        "memory": f"{count} {_nodes(count)} {have} {_lacking(demand)}",
        "stale": f"{count} {_nodes(count)}' reports are stale"
        if not one
        else "1 node's report is stale",
        "no-report": f"{count} {_nodes(count)} {have} no GPU report",
        "unreadable": f"{count} {_nodes(count)} cannot read {'its' if one else 'their'} GPUs",
        "too-small": f"{count} {_nodes(count)} {have} GPUs too small or too few",
    }
    return phrases.get(kind, f"{count} {_nodes(count)} refuse it otherwise (see the reasons)")


def fits_nowhere(demand: GpuDemand, verdicts: Sequence[NodeVerdict]) -> str:
    """The line for a pod no node takes: "fits no node: 12 nodes have no GPU with 30Gi free, 3
    nodes' reports are stale, ..."."""
    if not verdicts:
        return "fits no node: the cluster has no nodes"
    # The memory kind also covers DRA refusals that can never resolve; those are told apart.
    kinds = Counter(
        v.kind if v.resolvable or v.kind != "memory" else "other"
        for v in verdicts
        if v.kind != "scheduler"
    )
    order = ["memory", "stale", "unreadable", "no-report", "too-small"]
    parts = [_phrase(k, kinds[k], demand) for k in order if kinds[k]]
    parts += [_phrase(k, n, demand) for k, n in kinds.items() if k not in order]
    excluded = Counter(v.scheduler_filter for v in verdicts if v.kind == "scheduler")
    if excluded:
        total = sum(excluded.values())
        by = ", ".join(
            f"{what} {n}" for what, n in sorted(excluded.items(), key=lambda e: (-e[1], e[0]))
        )
        parts.append(f"{total} {_nodes(total)} kept off by the scheduler before Headroom ({by})")
    return "fits no node: " + ", ".join(parts)


def as_json(explanation: Explanation) -> dict[str, Any]:
    """Every field, every node (whatever --all-nodes says), demand with its words."""
    data = asdict(explanation)
    if explanation.demand is not None:
        data["demand"]["text"] = explanation.demand.describe()
    return data
