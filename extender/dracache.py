"""What the extender knows of DRA: published GPU devices, ResourceClaims, their templates and the
device taints, kept from the watch caches' events.

The cluster view asks it three things when it builds a node's snapshot: the lookups that turn a
pod's claims into GPUs (`lookups`), the GPUs allocated claims hold for pods not bound yet
(`allocations`), and the GPUs a taint keeps new claims off (`tainted`). Each event says which
nodes it changed, through `on_change`, so the view recomputes only those. Thread-safe; its lock is
never held while `on_change` runs, so the view may call in while holding its own.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from headroom import dra
from headroom.fields import FieldError
from headroom.fit import PodClaim
from headroom.ledger import allocation_claims
from headroom.podclaims import DraLookups
from kubeapi.cache import DELETED, WatchEvent, object_key

log = logging.getLogger(__name__)
NodesChanged = Callable[[Iterable[str]], None]  # the nodes whose accounts may have changed


class DraCache:
    def __init__(
        self,
        *,
        device_classes: tuple[str, ...] = dra.DEFAULT_GPU_DRIVERS,
        drivers: tuple[str, ...] = dra.DEFAULT_GPU_DRIVERS,
        on_change: NodesChanged = lambda nodes: None,
    ) -> None:
        self._lock = threading.Lock()
        self._devices: dict[dra.DeviceKey, dra.SliceDevice] = {}
        self._slice_keys: dict[str, list[dra.DeviceKey]] = {}  # slice name -> its devices
        self._claims: dict[str, Mapping[str, Any]] = {}  # namespace/name
        self._claim_nodes: dict[str, frozenset[str]] = {}
        self._node_claims: dict[str, set[str]] = {}
        self._templates: dict[str, Mapping[str, Any]] = {}
        self._rules: dict[str, Mapping[str, Any]] = {}
        self._tainted: dict[str, str] = {}
        self.on_change = on_change
        # The lookups read these dicts without the lock: they are only updated key by key (a
        # dict's get is atomic), and the device index is replaced, never changed in place.
        self._lookups = DraLookups(
            claim=lambda namespace, name: self._claims.get(f"{namespace}/{name}"),
            template=lambda namespace, name: self._templates.get(f"{namespace}/{name}"),
            devices=self._devices,
            device_classes=device_classes,
            drivers=drivers,
        )

    # -- reading ---------------------------------------------------------------------------------
    def lookups(self) -> DraLookups:
        return self._lookups

    def allocations(self, node_name: str, *, bound: Callable[[str], bool]) -> list[PodClaim]:
        """GPUs on the node held by allocated claims whose pod is not bound (yet)."""
        with self._lock:
            claims = [self._claims[k] for k in self._node_claims.get(node_name, ())]
        held = allocation_claims(claims, bound_pods=bound, dra=self._lookups)
        return held.get(node_name, [])

    def tainted(self) -> Mapping[str, str]:
        """GPU UUID -> the NoSchedule / NoExecute taint on it."""
        return self._tainted

    # -- watch events ----------------------------------------------------------------------------
    def apply_slice(self, event: WatchEvent) -> None:
        key = object_key(event.object)
        try:
            devices = [] if event.type == DELETED else dra.slice_devices(event.object)
        except FieldError as exc:
            log.warning("ResourceSlice %s unreadable (%s); its devices are ignored", key, exc)
            devices = []
        with self._lock:
            index = dict(self._devices)
            for old in self._slice_keys.pop(key, []):
                index.pop(old, None)
            for device in devices:
                index[device.key] = device
            if devices:
                self._slice_keys[key] = [d.key for d in devices]
            nodes = self._set_devices(index)
        nodes |= {d.node_name for d in devices}
        nodes |= {str((event.old or {}).get("spec", {}).get("nodeName") or "")}
        self.on_change(n for n in nodes if n)

    def apply_claim(self, event: WatchEvent) -> None:
        key = object_key(event.object)
        try:
            held = [] if event.type == DELETED else self._held(event.object)
        except FieldError as exc:
            log.warning("ResourceClaim %s unreadable (%s); it holds no GPU here", key, exc)
            held = []
        nodes = frozenset(g.device.node_name for g in held if g.device.node_name)
        with self._lock:
            before = self._claim_nodes.pop(key, frozenset())
            for node in before:
                self._node_claims.get(node, set()).discard(key)
            if event.type == DELETED:
                self._claims.pop(key, None)
            else:
                self._claims[key] = event.object
            if nodes:
                self._claim_nodes[key] = nodes
                for node in nodes:
                    self._node_claims.setdefault(node, set()).add(key)
        self.on_change(before | nodes)

    def apply_template(self, event: WatchEvent) -> None:
        key = object_key(event.object)
        if event.type == DELETED:
            self._templates.pop(key, None)
        else:
            self._templates[key] = event.object

    def apply_rule(self, event: WatchEvent) -> None:
        key = object_key(event.object)
        with self._lock:
            if event.type == DELETED:
                self._rules.pop(key, None)
            else:
                self._rules[key] = event.object
            before = set(self._tainted)
            self._retaint()
            changed = before ^ set(self._tainted)
            nodes = {d.node_name for d in self._devices.values() if d.uuid in changed}
        self.on_change(nodes)

    def _held(self, claim: Mapping[str, Any]) -> list[dra.AllocatedGpu]:
        return dra.allocated_gpus(claim, self._devices, gpu_drivers=self._lookups.drivers)

    def _set_devices(self, index: dict[dra.DeviceKey, dra.SliceDevice]) -> set[str]:
        """Swap in a new device index (callers hold the lock), and place every claim again: a
        claim seen before the slice that publishes its device now has a node. Returns the nodes
        whose claims changed."""
        self._devices = index
        self._lookups = DraLookups(
            claim=self._lookups.claim,
            template=self._lookups.template,
            devices=index,
            device_classes=self._lookups.device_classes,
            drivers=self._lookups.drivers,
        )
        self._retaint()
        changed: set[str] = set()
        node_claims: dict[str, set[str]] = {}
        for key, claim in self._claims.items():
            try:
                held = self._held(claim)
            except FieldError:
                held = []
            nodes = frozenset(g.device.node_name for g in held if g.device.node_name)
            if nodes != self._claim_nodes.get(key, frozenset()):
                changed |= nodes ^ self._claim_nodes.get(key, frozenset())
            if nodes:
                self._claim_nodes[key] = nodes
            else:
                self._claim_nodes.pop(key, None)
            for node in nodes:
                node_claims.setdefault(node, set()).add(key)
        self._node_claims = node_claims
        return changed

    def _retaint(self) -> None:
        drivers = set(self._lookups.drivers)
        gpus = (d for d in self._devices.values() if d.driver in drivers)
        self._tainted = dra.tainted_gpus(gpus, self._rules.values())
