"""The checks a DRA pod gets beyond `fit`: its already-chosen GPUs, and the allocator's habits.

The stock DRA allocator picks the device; Headroom sees the choice only at bind, after PreBind
wrote it into the claim. Two consequences, handled here from the cluster view:

- A pod whose claims are already allocated (a shared ResourceClaim, or a retry) can only go where
  its GPUs are, and only if those GPUs can hold it now (`check_gpus`).
- When bind refuses the GPU the allocator chose (its live memory is not there), the scheduler
  deallocates and tries again, and the allocator, which goes through a node's devices in the same
  order each time, would choose the same GPU again: a loop. So bind records the miss with the
  GPU's holders at that moment, and the filter keeps the node out for any pod that GPU cannot hold
  while its holders are the same (while the allocator would still choose it). When the GPU gains
  or loses a holder, the allocator's choice may differ and the miss is forgotten; when its memory
  frees up, it holds the pod and bind succeeds. Each refusal therefore needs a change in the
  cluster before the same GPU can be refused again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from extender.verbs import Settings
from extender.view import ClusterView
from headroom.chosen import check_gpus
from headroom.demand import GpuDemand
from headroom.fit import NodeSnapshot, Reason, ReasonKind, ledger
from headroom.podclaims import PodGpus

Holders = tuple[bool, int]  # (held whole, shared pods) on a GPU


def without(snapshot: NodeSnapshot, pod_uid: str) -> NodeSnapshot:
    """The node as it is for a pod that is not on it: its own claims left out."""
    return replace(snapshot, claims=tuple(c for c in snapshot.claims if c.uid != pod_uid))


def holders(snapshot: NodeSnapshot, gpu_uuid: str) -> Holders | None:
    for book in ledger(snapshot)[0]:
        if book.gpu.uuid == gpu_uuid:
            return (book.held_whole, book.shared_pods)
    return None


class DraGate:
    def __init__(
        self, view: ClusterView, *, settings: Settings, clock: Callable[[], float]
    ) -> None:
        self.view = view
        self.settings = settings
        self.clock = clock

    def check(
        self, node_name: str, demand: GpuDemand, claims: PodGpus, *, pod_uid: str
    ) -> Reason | None:
        """Why a DRA pod cannot go to this node, beyond what `fit` says; None when it can."""
        if claims.allocated:
            if node_name not in claims.nodes:
                return Reason(
                    f"its ResourceClaims hold GPUs on {', '.join(claims.nodes) or 'no node'}",
                    resolvable=False,
                )
            snapshot = without(self.view.snapshot(node_name), pod_uid)
            return self.pinned(demand, snapshot, claims.gpu_uuids)
        misses = self.view.misses(node_name)
        if not misses:  # the common case, asked for every node the filter passes
            return None
        snapshot = without(self.view.snapshot(node_name), pod_uid)
        for gpu_uuid, then in misses.items():
            if holders(snapshot, gpu_uuid) != then:
                self.view.forget_miss(node_name, gpu_uuid)
                continue
            reason = self.pinned(demand, snapshot, (gpu_uuid,))
            if reason is not None:
                return Reason(
                    f"the DRA allocator chooses {gpu_uuid} here first, and it cannot hold the "
                    f"pod: {reason.message}",
                    best_free_bytes=reason.best_free_bytes,
                    kind=ReasonKind.MEMORY,
                )
        return None

    def pinned(
        self, demand: GpuDemand, snapshot: NodeSnapshot, gpu_uuids: tuple[str, ...]
    ) -> Reason | None:
        return check_gpus(
            demand,
            snapshot,
            gpu_uuids,
            now_unix_seconds=self.clock(),
            staleness_seconds=self.settings.staleness_seconds,
        )
