"""The JSON the kube-scheduler and the extender exchange (`k8s.io/kube-scheduler/extender/v1`).

Field names are Go's (PascalCase), as the scheduler sends and expects them. `NodeNames` comes when
the extender is configured `nodeCacheCapable: true`, full `Nodes` otherwise; both are answered in
kind. `FailedAndUnresolvableNodes` names nodes where preemption cannot help (GPUs too small).
"""

from __future__ import annotations

from typing import Any, TypedDict

JsonObject = dict[str, Any]


class NodeList(TypedDict, total=False):
    items: list[JsonObject]


class ExtenderArgs(TypedDict, total=False):
    Pod: JsonObject
    Nodes: NodeList | None
    NodeNames: list[str] | None


class ExtenderFilterResult(TypedDict, total=False):
    Nodes: NodeList | None
    NodeNames: list[str] | None
    FailedNodes: dict[str, str]
    FailedAndUnresolvableNodes: dict[str, str]
    Error: str


class HostPriority(TypedDict):
    Host: str
    Score: int


class ExtenderBindingArgs(TypedDict):
    PodName: str
    PodNamespace: str
    PodUID: str
    Node: str


class ExtenderBindingResult(TypedDict, total=False):
    Error: str


class WireError(ValueError):
    """A request body that is not what the scheduler sends; the message names the field."""


def parse_args(body: object) -> tuple[JsonObject, list[str], list[JsonObject] | None]:
    """The pod, the candidate node names, and the full Node objects when those were sent."""
    if not isinstance(body, dict):
        raise WireError("body: expected a JSON object (ExtenderArgs)")
    pod = body.get("Pod")
    if not isinstance(pod, dict) or not isinstance(pod.get("metadata"), dict):
        raise WireError("Pod: expected a Pod object with metadata")
    names = body.get("NodeNames")
    nodes = body.get("Nodes")
    if names is not None:
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise WireError("NodeNames: expected a list of node names")
        return pod, list(names), None
    if isinstance(nodes, dict) and isinstance(nodes.get("items"), list):
        items: list[JsonObject] = nodes["items"]
        return pod, [_node_name(item, i) for i, item in enumerate(items)], items
    raise WireError("NodeNames or Nodes: one of them is required")


def _node_name(item: object, index: int) -> str:
    where = f"Nodes.items[{index}]"
    if not isinstance(item, dict):
        raise WireError(f"{where}: expected a Node object with metadata.name")
    metadata = item.get("metadata")
    if not isinstance(metadata, dict):
        raise WireError(f"{where}.metadata: expected an object with name")
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        raise WireError(f"{where}.metadata.name: expected a non-empty string")
    return name


def parse_binding(body: object) -> ExtenderBindingArgs:
    if not isinstance(body, dict):
        raise WireError("body: expected a JSON object (ExtenderBindingArgs)")
    for key in ("PodName", "PodNamespace", "PodUID", "Node"):
        if not isinstance(body.get(key), str) or not body[key]:
            raise WireError(f"{key}: expected a non-empty string")
    return ExtenderBindingArgs(PodName=body["PodName"], PodNamespace=body["PodNamespace"],
                               PodUID=body["PodUID"], Node=body["Node"])
