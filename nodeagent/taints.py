"""Which DeviceTaintRules this node's agent wants, given its report and the node's ResourceSlices
(pure: JSON and dataclasses in, JSON out).

The stock DRA allocator picks devices by declared capacity and does not know that the agent found
a GPU lost or hit by a critical XID. A DeviceTaintRule (`resource.k8s.io/v1`) makes it skip a
device. For each GPU the report marks unhealthy, the device some GPU driver's slice on this node
publishes under that GPU's `uuid` attribute gets one rule, named `headroom-<node>-<device>` and
labelled with the node, so that the admission policy can hold each agent to its own node's rules
and a restarted agent finds the ones it left.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from headroom import names
from headroom.dra import GROUP_VERSION, SliceDevice
from headroom.report import GpuState, NodeReport

OFF = "off"
EFFECTS = ("NoSchedule", "NoExecute")
TAINT_KEY = f"{names.API_GROUP}/gpu-unhealthy"
NODE_LABEL = f"{names.API_GROUP}/node"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "headroom-nodeagent"
NAME_PREFIX = "headroom-"

MAX_NAME = 253  # a DNS subdomain, as object names are
MAX_LABEL_VALUE = 63
HASH_CHARS = 10
# `headroom-<node>-<hash>` must fit, so longer Node names cannot have rules.
MAX_NODE_NAME = MAX_NAME - len(NAME_PREFIX) - 1 - HASH_CHARS

_XID = re.compile(r"critical XID (\d+)\b")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_CHARS]


def name_prefix(node: str) -> str:
    """What every rule of this node's agent is named with; the admission policy checks it."""
    return f"{NAME_PREFIX}{node}-"


def rule_name(node: str, device: str) -> str:
    """`headroom-<node>-<device>`, or `headroom-<node>-<hash of device>` when that is longer than
    an object name may be. Node names are DNS subdomains and device names DNS labels, so both
    forms are DNS subdomains. ValueError for a node name too long for any rule name."""
    if len(node) > MAX_NODE_NAME:
        raise ValueError(
            f"Node name of {len(node)} characters: rule names headroom-<node>-... would be "
            f"longer than {MAX_NAME}; device taints need a Node name of at most {MAX_NODE_NAME}"
        )
    full = f"{name_prefix(node)}{device}"
    return full if len(full) <= MAX_NAME else f"{name_prefix(node)}{_digest(device)}"


def node_label_value(node: str) -> str:
    """The node as a label value: the name itself when it fits (63 characters), else its start
    and a hash. Node names use only label characters, so length is the only concern."""
    if len(node) <= MAX_LABEL_VALUE:
        return node
    head = node[: MAX_LABEL_VALUE - HASH_CHARS - 1].rstrip("-.")
    return f"{head}-{_digest(node)}"


def node_selector(node: str) -> str:
    """The label selector that lists this node's rules."""
    return f"{NODE_LABEL}={node_label_value(node)}"


def taint_value(gpu: GpuState, *, nvml_usable: bool) -> str:
    """A short reason for the taint's value (a valid label value): `xid-79`, `lost`,
    `nvml-error` (another query failed), `nvml-unavailable` (NVML unusable on the node)."""
    if not nvml_usable:
        return "nvml-unavailable"
    found = _XID.match(gpu.reason)  # the wording of nodeagent.xid's holds
    if found:
        return f"xid-{found.group(1)}"
    if gpu.reason.startswith("GPU is lost"):  # NVML's text for GPU_IS_LOST
        return "lost"
    return "nvml-error"


@dataclass(frozen=True)
class WantedTaint:
    """One rule the agent wants: the device it taints and why."""

    name: str
    device: SliceDevice
    gpu_uuid: str
    value: str


def wanted_taints(
    report: NodeReport,
    devices: Iterable[SliceDevice],
    *,
    node: str,
    drivers: Iterable[str],
) -> dict[str, WantedTaint]:
    """Rule name -> what it taints: every device of one of `drivers` on `node` whose `uuid` is a
    GPU the report marks unhealthy. Devices of other nodes or drivers, and devices without a
    `uuid`, are never tainted."""
    unhealthy = {g.uuid: g for g in report.gpus if not g.healthy}
    allowed = set(drivers)
    wanted: dict[str, WantedTaint] = {}
    for device in devices:
        if device.driver not in allowed or device.node_name != node or device.uuid is None:
            continue
        gpu = unhealthy.get(device.uuid)
        if gpu is None:
            continue
        name = rule_name(node, device.name)
        value = taint_value(gpu, nvml_usable=report.healthy)
        wanted[name] = WantedTaint(name=name, device=device, gpu_uuid=gpu.uuid, value=value)
    return wanted


def rule_object(wanted: WantedTaint, *, node: str, effect: str) -> dict[str, Any]:
    """The DeviceTaintRule for one wanted taint (without a resourceVersion)."""
    device = wanted.device
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "DeviceTaintRule",
        "metadata": {
            "name": wanted.name,
            "labels": {NODE_LABEL: node_label_value(node), MANAGED_BY_LABEL: MANAGED_BY},
            "annotations": {f"{names.API_GROUP}/gpu-uuid": wanted.gpu_uuid},
        },
        "spec": {
            "deviceSelector": {"driver": device.driver, "pool": device.pool, "device": device.name},
            "taint": {"key": TAINT_KEY, "value": wanted.value, "effect": effect},
        },
    }


def unwanted(
    rules: Mapping[str, Mapping[str, Any]],
    wanted: Mapping[str, WantedTaint],
    report: NodeReport,
    devices: Iterable[SliceDevice],
) -> list[str]:
    """The names of this node's rules to delete: not wanted, and their device either no longer
    published or a GPU the report shows healthy. A rule on a published device whose GPU the
    report does not show stays: nothing says that GPU is fine (NVML unusable, a GPU lost before
    this run could read its UUID, a GPU gone from NVML's list)."""
    published = {d.key: d for d in devices}
    healthy = {g.uuid for g in report.gpus if g.healthy}
    found = []
    for name, rule in rules.items():
        if name in wanted:
            continue
        selector = (rule.get("spec") or {}).get("deviceSelector") or {}
        key = tuple(str(selector.get(k, "")) for k in ("driver", "pool", "device"))
        device = published.get((key[0], key[1], key[2]))
        if device is None or device.uuid in healthy:
            found.append(name)
    return sorted(found)


def _essence(rule: Mapping[str, Any]) -> tuple[Any, ...]:
    """What must match for a rule to be as wanted: its labels, selector and taint (the server
    adds `timeAdded` to the taint and may add labels of its own)."""
    metadata = rule.get("metadata") or {}
    labels = metadata.get("labels") or {}
    spec = rule.get("spec") or {}
    taint = spec.get("taint") or {}
    return (
        labels.get(NODE_LABEL),
        labels.get(MANAGED_BY_LABEL),
        spec.get("deviceSelector"),
        (taint.get("key"), taint.get("value"), taint.get("effect")),
    )


def up_to_date(current: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    return _essence(current) == _essence(desired)


def updated(current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """`current` with the labels and spec of `desired`: the body of an update (it keeps the
    resourceVersion, so a concurrent change makes it a conflict, not a lost write)."""
    metadata = dict(current.get("metadata") or {})
    metadata["labels"] = {**(metadata.get("labels") or {}), **desired["metadata"]["labels"]}
    metadata["annotations"] = {
        **(metadata.get("annotations") or {}),
        **desired["metadata"]["annotations"],
    }
    return {**current, "metadata": metadata, "spec": desired["spec"]}
