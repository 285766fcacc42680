"""The JSON the kube-scheduler and the extender exchange (`k8s.io/kube-scheduler/extender/v1`).

Field names are Go's (PascalCase), as the scheduler sends and expects them. `NodeNames` comes when
the extender is configured `nodeCacheCapable: true`, full `Nodes` otherwise; both are answered in
kind. `FailedAndUnresolvableNodes` names nodes where preemption cannot help (GPUs too small).
"""

from __future__ import annotations

from itertools import repeat
from typing import Any, TypedDict

from headroom.fields import FieldError, read_mapping, read_str

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


class WireError(FieldError):
    """A request body that is not what the scheduler sends; `field` names the field."""


def parse_args(body: object) -> tuple[JsonObject, list[str], list[JsonObject] | None]:
    """The pod, the candidate node names, and the full Node objects when those were sent."""
    args = read_mapping(
        body, "body", expected="a JSON object (ExtenderArgs)", show=None, error=WireError
    )
    pod = args.get("Pod")
    if not isinstance(pod, dict) or not isinstance(pod.get("metadata"), dict):
        raise WireError("Pod", "expected a Pod object with metadata")
    names = args.get("NodeNames")
    nodes = args.get("Nodes")
    if names is not None:
        if not isinstance(names, list) or not all(map(isinstance, names, repeat(str))):
            raise WireError("NodeNames", "expected a list of node names")
        return pod, list(names), None
    if isinstance(nodes, dict) and isinstance(nodes.get("items"), list):
        items: list[JsonObject] = nodes["items"]
        return pod, [_node_name(item, i) for i, item in enumerate(items)], items
    raise WireError("NodeNames or Nodes", "one of them is required")


def _node_name(item: object, index: int) -> str:
    where = f"Nodes.items[{index}]"
    node = read_mapping(
        item, where, expected="a Node object with metadata.name", show=None, error=WireError
    )
    metadata = read_mapping(
        node.get("metadata"),
        f"{where}.metadata",
        expected="an object with name",
        show=None,
        error=WireError,
    )
    return read_str(
        metadata.get("name"), f"{where}.metadata.name", nonempty=True, show=None, error=WireError
    )


def parse_binding(body: object) -> ExtenderBindingArgs:
    args = read_mapping(
        body, "body", expected="a JSON object (ExtenderBindingArgs)", show=None, error=WireError
    )
    pod_name, namespace, uid, node = (
        read_str(args.get(key), key, nonempty=True, show=None, error=WireError)
        for key in ("PodName", "PodNamespace", "PodUID", "Node")
    )
    return ExtenderBindingArgs(PodName=pod_name, PodNamespace=namespace, PodUID=uid, Node=node)
