"""The cluster's GPU view as the extender holds it, built from one LIST of each kind: what
`kubectl headroom why` and `top` read.

The objects go through the extender's own `ClusterView` and `DraCache` (as watch events, the way
its caches feed them, pods slimmed as its pod cache slims them), so a node's snapshot and summary
here are the ones the extender's filter and prioritize would compute from the same objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cli import api
from headroom.dra import DEFAULT_GPU_DRIVERS

if TYPE_CHECKING:
    from cli.cluster import Cluster
    from extender.view import ClusterView

JsonDict = dict[str, Any]


@dataclass
class LiveView:
    view: ClusterView
    nodes: list[JsonDict]  # Node objects, sorted by name
    pods: list[JsonDict]  # every pod, as listed
    resource_claims: list[JsonDict] = field(default_factory=list)
    reported: list[str] = field(default_factory=list)  # nodes with a GPUNode, sorted
    _names: dict[str, str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # The ledger keys a claim by its pod's UID, or by `claim:<UID>` for a ResourceClaim held
        # for no pod Headroom knows.
        self._names = {_uid(p): _ref(p) for p in self.pods}
        self._names |= {f"claim:{_uid(c)}": f"claim {_ref(c)}" for c in self.resource_claims}

    def node_names(self) -> list[str]:
        return [str(n["metadata"]["name"]) for n in self.nodes]

    def who(self, uid: str) -> str:
        """`namespace/name` of a pod (or `claim namespace/name` of a ResourceClaim) by the UID
        the ledger knows it by; the UID itself when neither is known."""
        return self._names.get(uid, uid)


def load(
    cluster: Cluster,
    *,
    device_classes: Sequence[str] = DEFAULT_GPU_DRIVERS,
    drivers: Sequence[str] = DEFAULT_GPU_DRIVERS,
) -> LiveView:
    """Every GPUNode, Node and pod, and DRA's objects where the cluster serves them."""
    from extender.dracache import DraCache  # noqa: PLC0415
    from extender.slimpod import slim_pod  # noqa: PLC0415
    from extender.view import ClusterView  # noqa: PLC0415
    from kubeapi.cache import WatchEvent  # noqa: PLC0415

    gpunodes = cluster.list(api.GPUNODES)
    nodes = sorted(cluster.list(api.NODES), key=lambda n: str(n["metadata"]["name"]))
    pods = cluster.list(api.PODS)
    dra = DraCache(device_classes=tuple(device_classes), drivers=tuple(drivers))
    claims = cluster.list(api.RESOURCE_CLAIMS, optional=True)
    for path, apply in (
        (api.RESOURCE_SLICES, dra.apply_slice),
        (api.RESOURCE_CLAIM_TEMPLATES, dra.apply_template),
        (api.DEVICE_TAINT_RULES, dra.apply_rule),
    ):
        for obj in cluster.list(path, optional=True):
            apply(WatchEvent("ADDED", obj))
    for obj in claims:
        dra.apply_claim(WatchEvent("ADDED", obj))
    view = ClusterView(dra=dra)
    view.load(gpunodes=gpunodes, nodes=nodes, pods=[slim_pod(p) for p in pods])
    reported = sorted(str(g["metadata"]["name"]) for g in gpunodes)
    return LiveView(view, nodes, pods, claims, reported)


def _uid(obj: JsonDict) -> str:
    return str((obj.get("metadata") or {}).get("uid", ""))


def _ref(obj: JsonDict) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"
