"""GPUs through Dynamic Resource Allocation (`resource.k8s.io/v1`), as plain JSON in and out.

A DRA driver publishes its devices in ResourceSlices: per node, a pool of devices, each with
attributes (NVIDIA's driver gives `uuid` and `productName`) and capacities (`memory`, the *total*
bytes: DRA's capacity never changes with use). The stock allocator writes what it chose into
`ResourceClaim.status.allocation.devices.results` as (driver, pool, device). This module joins the
two, so that an allocated claim names the GPU UUID it holds on its node before the node agent sees
any process, and counts the GPU devices a claim asks for.

Which devices are GPUs is a setting: the drivers whose devices Headroom accounts for, by default
NVIDIA's `gpu.nvidia.com`. Pure: JSON in, dataclasses out, FieldError naming the field on input
that is not the API's shape.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from headroom import fields
from headroom.quantity import parse_bytes

GROUP_VERSION = "resource.k8s.io/v1"
NVIDIA_GPU_DRIVER = "gpu.nvidia.com"  # also the DeviceClass name NVIDIA's driver installs
DEFAULT_GPU_DRIVERS = (NVIDIA_GPU_DRIVER,)
UUID_ATTRIBUTE = "uuid"
MEMORY_CAPACITY = "memory"
EXACT_COUNT, ALL = "ExactCount", "All"

_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN = re.compile(rf"{_DNS_LABEL}(\.{_DNS_LABEL})*")

DeviceKey = tuple[str, str, str]  # (driver, pool, device): how an allocation result names one


def parse_names(text: str, field: str) -> tuple[str, ...]:
    """A comma-separated list of DeviceClass or driver names (DNS subdomains, as the API
    requires), e.g. a flag's value; FieldError naming `field` otherwise."""
    found = tuple(part.strip() for part in text.split(",") if part.strip())
    if not found:
        fields.fail(text, field, expected="one or more names, comma-separated")
    for name in found:
        if len(name) > 253 or not _DNS_SUBDOMAIN.fullmatch(name):
            fields.fail(name, field, expected="DNS subdomains such as gpu.nvidia.com")
    return found


@dataclass(frozen=True)
class SliceDevice:
    """One device a ResourceSlice publishes."""

    driver: str
    pool: str
    name: str
    node_name: str  # "" for devices not local to one node
    uuid: str | None  # the `uuid` attribute, when the driver publishes one
    memory_bytes: int | None  # the `memory` capacity: the device's total
    taints: tuple[str, ...] = ()  # "key=value:Effect" of its NoSchedule / NoExecute taints

    @property
    def key(self) -> DeviceKey:
        return (self.driver, self.pool, self.name)


@dataclass(frozen=True)
class AllocatedGpu:
    """A GPU device the allocator gave one request of a claim."""

    request: str
    device: SliceDevice


def slice_devices(resource_slice: Mapping[str, Any]) -> list[SliceDevice]:
    """The devices of one ResourceSlice object."""
    spec = fields.read_mapping(resource_slice.get("spec"), "spec")
    driver = fields.read_str(spec.get("driver"), "spec.driver", nonempty=True)
    pool = fields.read_mapping(spec.get("pool"), "spec.pool")
    pool_name = fields.read_str(pool.get("name"), "spec.pool.name", nonempty=True)
    node_name = fields.read_optional_str(spec.get("nodeName"), "spec.nodeName") or ""
    devices = fields.read_optional_list(spec.get("devices"), "spec.devices")
    found = []
    for index, raw in enumerate(devices):
        where = f"spec.devices[{index}]"
        device = fields.read_mapping(raw, where)
        found.append(
            SliceDevice(
                driver=driver,
                pool=pool_name,
                name=fields.read_str(device.get("name"), f"{where}.name", nonempty=True),
                node_name=node_name,
                uuid=_attribute(device, UUID_ATTRIBUTE, driver=driver, where=where),
                memory_bytes=_capacity_bytes(device, MEMORY_CAPACITY, driver=driver, where=where),
                taints=_blocking_taints(device.get("taints"), f"{where}.taints"),
            )
        )
    return found


def device_index(slices: Iterable[Mapping[str, Any]]) -> dict[DeviceKey, SliceDevice]:
    """Every published device by (driver, pool, device). A slice that does not read is skipped:
    one driver's bad slice must not hide every other driver's GPUs."""
    index: dict[DeviceKey, SliceDevice] = {}
    for resource_slice in slices:
        try:
            devices = slice_devices(resource_slice)
        except fields.FieldError:
            continue
        for device in devices:
            index[device.key] = device
    return index


def allocated_gpus(
    claim: Mapping[str, Any],
    index: Mapping[DeviceKey, SliceDevice],
    *,
    gpu_drivers: Iterable[str] = DEFAULT_GPU_DRIVERS,
) -> list[AllocatedGpu]:
    """The GPUs an allocated claim holds; [] while it is not allocated. A result whose device no
    slice publishes (any more) is left out: there is no GPU to name."""
    status = fields.read_optional_mapping(claim.get("status"), "status")
    allocation = fields.read_optional_mapping(status.get("allocation"), "status.allocation")
    devices = fields.read_optional_mapping(allocation.get("devices"), "status.allocation.devices")
    results = fields.read_optional_list(devices.get("results"), "status.allocation.devices.results")
    drivers = set(gpu_drivers)
    gpus = []
    for position, raw in enumerate(results):
        where = f"status.allocation.devices.results[{position}]"
        result = fields.read_mapping(raw, where)
        key = (
            fields.read_str(result.get("driver"), f"{where}.driver"),
            fields.read_str(result.get("pool"), f"{where}.pool"),
            fields.read_str(result.get("device"), f"{where}.device"),
        )
        device = index.get(key) if key[0] in drivers else None
        if device is not None:
            gpus.append(AllocatedGpu(str(result.get("request") or ""), device))
    return gpus


@dataclass(frozen=True)
class GpuAsk:
    """What a claim's spec asks of GPU device classes: `count` devices, or `all_devices` (every
    matching device of a node's pool, known only once allocated). `memory_bytes` is the largest
    `memory` capacity a request asks of each device (consumable capacity): such a claim takes a
    share of a GPU, not the whole of it."""

    count: int = 0
    all_devices: bool = False
    memory_bytes: int = 0

    @property
    def any(self) -> bool:
        return self.count > 0 or self.all_devices

    @property
    def shared(self) -> bool:
        return self.memory_bytes > 0

    def plus(self, other: GpuAsk) -> GpuAsk:
        return GpuAsk(
            self.count + other.count,
            self.all_devices or other.all_devices,
            max(self.memory_bytes, other.memory_bytes),
        )


def requested_gpus(
    claim_spec: Mapping[str, Any], *, device_classes: Iterable[str] = DEFAULT_GPU_DRIVERS
) -> GpuAsk:
    """The GPU devices a ResourceClaim spec (or a template's `spec.spec`) requests from the given
    DeviceClasses. Requests of other classes count for nothing. A prioritized list
    (`firstAvailable`) counts its first choice: the allocator prefers it."""
    classes = set(device_classes)
    devices = fields.read_optional_mapping(claim_spec.get("devices"), "spec.devices")
    requests = fields.read_optional_list(devices.get("requests"), "spec.devices.requests")
    count, all_devices, memory_bytes = 0, False, 0
    for position, raw in enumerate(requests):
        where = f"spec.devices.requests[{position}]"
        request = fields.read_mapping(raw, where)
        exactly, at = _chosen_request(request, where)
        if exactly is None:
            continue
        device_class = fields.read_str(exactly.get("deviceClassName"), f"{at}.deviceClassName")
        if device_class not in classes:
            continue
        mode = fields.read_optional_str(exactly.get("allocationMode"), f"{at}.allocationMode")
        if mode in (None, EXACT_COUNT):
            count += fields.read_int(
                exactly.get("count", 1), f"{at}.count", minimum=1, expected="an integer >= 1"
            )
        elif mode == ALL:
            all_devices = True
        else:
            fields.fail(mode, f"{at}.allocationMode", expected=f"{EXACT_COUNT} or {ALL}")
        memory_bytes = max(memory_bytes, _requested_memory(exactly, at))
    return GpuAsk(count=count, all_devices=all_devices, memory_bytes=memory_bytes)


def _requested_memory(exactly: Mapping[str, Any], at: str) -> int:
    """`capacity.requests.memory` (bare or qualified with a domain), in bytes; 0 when absent."""
    capacity = fields.read_optional_mapping(exactly.get("capacity"), f"{at}.capacity")
    asked = fields.read_optional_mapping(capacity.get("requests"), f"{at}.capacity.requests")
    for key, value in asked.items():
        if key == MEMORY_CAPACITY or str(key).endswith("/" + MEMORY_CAPACITY):
            return parse_bytes(value, field=f"{at}.capacity.requests.{key}")
    return 0


def _chosen_request(request: Mapping[str, Any], where: str) -> tuple[Mapping[str, Any] | None, str]:
    if request.get("exactly") is not None:
        return fields.read_mapping(request["exactly"], f"{where}.exactly"), f"{where}.exactly"
    choices = fields.read_optional_list(request.get("firstAvailable"), f"{where}.firstAvailable")
    if choices:
        at = f"{where}.firstAvailable[0]"
        return fields.read_mapping(choices[0], at), at
    return None, where


BLOCKING_EFFECTS = ("NoSchedule", "NoExecute")  # "None" and effects unknown to us only inform


def _blocking_taints(value: object, where: str) -> tuple[str, ...]:
    taints = fields.read_optional_list(value, where)
    found = []
    for position, raw in enumerate(taints):
        taint = fields.read_mapping(raw, f"{where}[{position}]")
        if taint.get("effect") in BLOCKING_EFFECTS:
            found.append(f"{taint.get('key', '')}={taint.get('value', '')}:{taint['effect']}")
    return tuple(found)


def rule_taint(rule: Mapping[str, Any]) -> tuple[Mapping[str, Any], str] | None:
    """A DeviceTaintRule's selector and its taint as "key=value:Effect", or None when the rule
    does not keep devices from being allocated (effect None or unknown, or no selector)."""
    spec = fields.read_optional_mapping(rule.get("spec"), "spec")
    selector = spec.get("deviceSelector")
    taint = fields.read_optional_mapping(spec.get("taint"), "spec.taint")
    if not isinstance(selector, Mapping) or taint.get("effect") not in BLOCKING_EFFECTS:
        return None
    return selector, f"{taint.get('key', '')}={taint.get('value', '')}:{taint['effect']}"


def rule_selects(selector: Mapping[str, Any], device: SliceDevice) -> bool:
    """Whether a DeviceTaintRule's `deviceSelector` picks the device: every field it sets must
    match (`driver`, `pool`, `device`); the empty selector picks every device."""
    wanted = {"driver": device.driver, "pool": device.pool, "device": device.name}
    return all(selector.get(key) in (None, value) for key, value in wanted.items())


def tainted_gpus(
    devices: Iterable[SliceDevice], rules: Iterable[Mapping[str, Any]] = ()
) -> dict[str, str]:
    """GPU UUID -> the taint that keeps new claims off it, from the slices' own taints and the
    DeviceTaintRules. A rule that does not read is ignored, as the allocator would not apply it."""
    selectors = []
    for rule in rules:
        try:
            found = rule_taint(rule)
        except fields.FieldError:
            continue
        if found is not None:
            selectors.append(found)
    tainted: dict[str, str] = {}
    for device in devices:
        taint = device_taint(device, selectors)
        if device.uuid is not None and taint is not None:
            tainted[device.uuid] = taint
    return tainted


def device_taint(
    device: SliceDevice, rule_taints: Iterable[tuple[Mapping[str, Any], str]]
) -> str | None:
    """The first NoSchedule / NoExecute taint on a device: its slice's own, then those of the
    rules (`rule_taint`'s (selector, taint) pairs) that select it."""
    rules = (taint for selector, taint in rule_taints if rule_selects(selector, device))
    return next(iter((*device.taints, *rules)), None)


def _named(values: Mapping[str, Any], name: str, *, driver: str) -> str | None:
    """The key under which `values` holds `name`: bare, or qualified with the driver's domain."""
    return next((key for key in (name, f"{driver}/{name}") if key in values), None)


def _attribute(device: Mapping[str, Any], name: str, *, driver: str, where: str) -> str | None:
    """A string attribute, by its short name or qualified with the driver's domain."""
    attributes = fields.read_optional_mapping(device.get("attributes"), f"{where}.attributes")
    key = _named(attributes, name, driver=driver)
    if key is None:
        return None
    at = f"{where}.attributes.{key}"
    return fields.read_optional_str(
        fields.read_mapping(attributes[key], at).get("string"), f"{at}.string"
    )


def _capacity_bytes(device: Mapping[str, Any], name: str, *, driver: str, where: str) -> int | None:
    capacity = fields.read_optional_mapping(device.get("capacity"), f"{where}.capacity")
    key = _named(capacity, name, driver=driver)
    if key is None:
        return None
    at = f"{where}.capacity.{key}"
    value = fields.read_mapping(capacity[key], at).get("value")
    return parse_bytes(value, field=f"{at}.value")  # a QuantityError is a FieldError


def allocation_keys(claim: Mapping[str, Any]) -> list[DeviceKey]:
    """The (driver, pool, device) of every result in a claim's allocation, published or not;
    [] for a claim not allocated or one whose status does not read."""
    status = claim.get("status")
    allocation = status.get("allocation") if isinstance(status, Mapping) else None
    devices = allocation.get("devices") if isinstance(allocation, Mapping) else None
    results = devices.get("results") if isinstance(devices, Mapping) else None
    return [
        (str(r.get("driver")), str(r.get("pool")), str(r.get("device")))
        for r in results or []
        if isinstance(r, Mapping)
    ]


def reserved_pods(claim: Mapping[str, Any]) -> tuple[str, ...]:
    """The UIDs of the pods a claim is reserved for (`status.reservedFor`, resource "pods")."""
    status = claim.get("status")
    entries = status.get("reservedFor") if isinstance(status, Mapping) else None
    if not isinstance(entries, list):
        return ()
    return tuple(
        str(e["uid"])
        for e in entries
        if isinstance(e, Mapping) and e.get("resource") == "pods" and e.get("uid")
    )
