"""What the extender knows of DRA: published GPU devices, ResourceClaims, their templates and the
device taints, kept from the watch caches' events.

The cluster view asks it three things when it builds a node's snapshot: the lookups that turn a
pod's claims into GPUs (`lookups`), the GPUs allocated claims hold for pods not bound yet
(`allocations`), and the GPUs a taint keeps new claims off (`tainted`). Each event says which
nodes it changed, through `on_change`, so the view recomputes only those. Every event costs what
it touches (a slice its devices and the claims allocated on them), not the cluster's size: a large
cluster lists thousands of slices and claims at start.

Thread-safe: events update under the lock; the lookups read the dicts without it, which is safe
because they are only changed key by key and read with `get`. The lock is never held while
`on_change` runs, so the view may call in while holding its own.
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
        self._claim_keys: dict[str, list[dra.DeviceKey]] = {}  # claim -> its allocated devices
        self._by_device: dict[dra.DeviceKey, set[str]] = {}  # device -> claims allocated it
        self._claim_nodes: dict[str, frozenset[str]] = {}
        self._node_claims: dict[str, set[str]] = {}
        self._templates: dict[str, Mapping[str, Any]] = {}
        self._rules: dict[str, tuple[Mapping[str, Any], str]] = {}  # selector, taint
        self._tainted: dict[str, str] = {}
        self._node_gpus: dict[str, int] = {}  # node -> GPU devices published there
        self.on_change = on_change
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
            keys = self._node_claims.get(node_name)
            if not keys:
                return []
            claims = [self._claims[k] for k in keys]
        held = allocation_claims(claims, bound_pods=bound, dra=self._lookups)
        return held.get(node_name, [])

    def publishes_gpus(self, node_name: str) -> bool:
        """Whether some ResourceSlice publishes GPUs (of the GPU drivers) on the node."""
        return self._node_gpus.get(node_name, 0) > 0

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
            # Replaced, not removed and added: a reader never sees a device missing meanwhile.
            new_keys = {d.key for d in devices}
            old = [self._devices[k] for k in self._slice_keys.pop(key, []) if k in self._devices]
            for device in devices:
                self._devices[device.key] = device
            for device in old:
                if device.key not in new_keys:
                    self._devices.pop(device.key, None)
            if devices:
                self._slice_keys[key] = [d.key for d in devices]
            for device in old:
                if device.uuid is not None:
                    self._tainted.pop(device.uuid, None)
            self._count_gpus(old, -1)
            self._count_gpus(devices, +1)
            for device in devices:
                self._taint(device)
            touched = {d.key for d in old} | {d.key for d in devices}
            claims = set().union(*(self._by_device.get(k, set()) for k in touched))
            nodes = {d.node_name for d in old} | {d.node_name for d in devices}
            for claim_key in claims:  # seen before the slice that publishes their device
                nodes |= self._place(claim_key)
        self.on_change(n for n in nodes if n)

    def apply_claim(self, event: WatchEvent) -> None:
        key = object_key(event.object)
        with self._lock:
            for device_key in self._claim_keys.pop(key, []):
                self._by_device.get(device_key, set()).discard(key)
            if event.type == DELETED:
                self._claims.pop(key, None)
            else:
                self._claims[key] = event.object
                self._claim_keys[key] = dra.allocation_keys(event.object)
                for device_key in self._claim_keys[key]:
                    self._by_device.setdefault(device_key, set()).add(key)
            nodes = self._place(key)
        self.on_change(nodes)

    def apply_template(self, event: WatchEvent) -> None:
        key = object_key(event.object)
        if event.type == DELETED:
            self._templates.pop(key, None)
        else:
            self._templates[key] = event.object

    def apply_rule(self, event: WatchEvent) -> None:
        key = object_key(event.object)
        try:
            found = None if event.type == DELETED else dra.rule_taint(event.object)
        except FieldError as exc:
            log.warning("DeviceTaintRule %s unreadable (%s); ignored", key, exc)
            found = None
        with self._lock:
            if found is None:
                self._rules.pop(key, None)
            else:
                self._rules[key] = found
            before = self._tainted
            after = {}  # built aside and swapped in: readers never see it half done
            for device in self._devices.values():  # rules are few and rarely change
                reason = self._taint_of(device)
                if reason is not None and device.uuid is not None:
                    after[device.uuid] = reason
            self._tainted = after
            changed = {u for u in before.keys() | after.keys() if before.get(u) != after.get(u)}
            nodes = {d.node_name for d in self._devices.values() if d.uuid in changed}
        self.on_change(nodes)

    # -- under the lock --------------------------------------------------------------------------
    def _place(self, claim_key: str) -> set[str]:
        """Work out again which nodes the claim's GPUs are on; the nodes it left or joined."""
        claim = self._claims.get(claim_key)
        held: list[dra.AllocatedGpu] = []
        if claim is not None:
            try:
                held = dra.allocated_gpus(claim, self._devices, gpu_drivers=self._lookups.drivers)
            except FieldError as exc:
                log.warning(
                    "ResourceClaim %s unreadable (%s); it holds no GPU here", claim_key, exc
                )
        nodes = frozenset(g.device.node_name for g in held if g.device.node_name)
        before = self._claim_nodes.pop(claim_key, frozenset())
        for node in before - nodes:
            self._node_claims.get(node, set()).discard(claim_key)
        for node in nodes:
            self._node_claims.setdefault(node, set()).add(claim_key)
        if nodes:
            self._claim_nodes[claim_key] = nodes
        return set(before | nodes)

    def _count_gpus(self, devices: Iterable[dra.SliceDevice], step: int) -> None:
        for device in devices:
            if device.node_name and device.driver in self._lookups.drivers:
                count = self._node_gpus.get(device.node_name, 0) + step
                if count > 0:
                    self._node_gpus[device.node_name] = count
                else:
                    self._node_gpus.pop(device.node_name, None)

    def _taint(self, device: dra.SliceDevice) -> None:
        reason = self._taint_of(device)
        if reason is not None and device.uuid is not None:
            self._tainted[device.uuid] = reason

    def _taint_of(self, device: dra.SliceDevice) -> str | None:
        if device.uuid is None or device.driver not in self._lookups.drivers:
            return None
        return dra.device_taint(device, self._rules.values())
