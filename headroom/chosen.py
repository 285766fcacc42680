"""Whether GPUs already chosen for a pod can hold it now: the check for GPUs the DRA allocator
picked (Headroom sees its choice only at bind) or that a pod's allocated claims hold.

The same accounts as `headroom.fit` (its `ledger`), applied to named GPUs instead of a search.
Pure: no client imports.
"""

from __future__ import annotations

from collections.abc import Sequence

from headroom.demand import GpuDemand
from headroom.fit import NodeSnapshot, Reason, freshness_reason, ledger
from headroom.quantity import format_bytes


def check_gpus(
    demand: GpuDemand,
    snapshot: NodeSnapshot,
    gpu_uuids: Sequence[str],
    *,
    now_unix_seconds: float,
    staleness_seconds: float,
) -> Reason | None:
    """Whether the GPUs already chosen for a pod (by the DRA allocator) can hold it now, by the
    same accounts as `fit`; `snapshot` must not include the pod itself. None when they can."""
    report = snapshot.report
    stale = freshness_reason(
        report, now_unix_seconds=now_unix_seconds, staleness_seconds=staleness_seconds
    )
    if stale is not None:
        return stale
    books = {b.gpu.uuid: b for b in ledger(snapshot)[0]}
    need = f"needs {format_bytes(demand.memory_bytes)}" if demand.memory_bytes else "needs it"
    for uuid in gpu_uuids:
        book = books.get(uuid)
        if book is None:
            return Reason(f"GPU {uuid} is not in the node's GPU report")
        where = f"GPU {book.gpu.index} ({uuid})"
        if not book.gpu.healthy:
            return Reason(f"{where} is unhealthy: {book.gpu.reason or 'no reason given'}")
        if book.held_whole or (not demand.shared and book.shared_pods):
            return Reason(f"{where} is held by another pod")
        if book.free_bytes < demand.memory_bytes:
            return Reason(
                f"{need}; {where} has {format_bytes(book.free_bytes)} free",
                best_free_bytes=book.free_bytes,
            )
    return None
