"""The verbs over HTTP (Flask test client): the real scheduler's JSON, answers in kind, errors.

The runtime here has no API client at all: filter and prioritize cannot write to a cluster.
"""

from __future__ import annotations

import gc
import json
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import given, settings
from hypothesis import strategies as st

from extender.app import GcFreeze, Runtime, create_app
from extender.leader import Leadership
from extender.verbs import Settings
from extender.view import ClusterView
from kubeapi.cache import WatchCache, WatchEvent
from serving.server import LIFECYCLE_KEY
from tests.extender.builders import NOW, gpunode, node, pod
from tests.waiting import wait_for

FIXTURES = Path(__file__).parent / "fixtures"


class Synced:
    """Stands in for a synced watch cache: readiness only looks at `synced`."""

    synced = True


def fixture(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return loaded


def make_client(*, leading: bool = True, synced: bool = True) -> tuple[FlaskClient, Runtime]:
    view = ClusterView()
    view.load(
        gpunodes=[
            gpunode("gpu-node-1", [80], used_gi=70),
            gpunode("gpu-node-2", [80]),
            gpunode("small", [24]),
        ],
        nodes=[node("gpu-node-1"), node("gpu-node-2"), node("small")],
        pods=[],
    )
    leadership = Leadership(None, lease=None, identity="me")
    leadership._leading = leading
    marker = Synced()
    marker.synced = synced
    caches: list[WatchCache] = [marker]  # type: ignore[list-item]
    runtime = Runtime(
        view=view,
        settings=Settings(staleness_seconds=90),
        leadership=leadership,
        caches=caches,
        clock=lambda: NOW,
    )
    app = create_app(runtime=runtime)
    app.testing = True
    return app.test_client(), runtime


def test_filter_answers_the_real_schedulers_node_names_request() -> None:
    client, _ = make_client()
    args = fixture("filter-args-node-names.json")
    args["NodeNames"] = ["gpu-node-1", "gpu-node-2", "small", "unknown"]
    response = client.post("/filter", json=args)
    assert response.status_code == 200
    body = response.get_json()
    assert body["NodeNames"] == ["gpu-node-2", "small"]
    assert body["FailedNodes"] == {
        "gpu-node-1": "needs 20Gi on 1 GPU; best free 10Gi on GPU 0 (GPU-gpu-node-1-0)",
        "unknown": "no GPU report",
    }
    assert body["Error"] == ""


def test_filter_answers_full_nodes_with_full_nodes() -> None:
    client, _ = make_client()
    args = fixture("filter-args-nodes.json")
    assert [n["metadata"]["name"] for n in args["Nodes"]["items"]] == ["gpu-node-1"]
    response = client.post("/filter", json=args)
    body = response.get_json()
    assert body["Nodes"]["items"] == []
    assert "gpu-node-1" in body["FailedNodes"]
    assert "NodeNames" not in body


def test_unresolvable_nodes_are_marked_so() -> None:
    client, _ = make_client()
    args = fixture("filter-args-node-names.json")
    args["Pod"]["metadata"]["annotations"]["headroom.dev/gpu-memory"] = "40Gi"
    args["NodeNames"] = ["small", "gpu-node-2"]
    body = client.post("/filter", json=args).get_json()
    assert body["NodeNames"] == ["gpu-node-2"]
    assert body["FailedAndUnresolvableNodes"] == {
        "small": "needs 40Gi on 1 GPU; the node has 1 GPUs, the largest 24Gi"
    }


def test_prioritize_scores_by_policy_and_the_pod_may_choose() -> None:
    client, runtime = make_client()
    runtime.view.apply_gpunode(WatchEvent("MODIFIED", gpunode("gpu-node-1", [80], used_gi=40)))
    args = fixture("prioritize-args-node-names.json")
    body = client.post("/prioritize", json=args).get_json()
    assert body == [{"Host": "gpu-node-1", "Score": 5}, {"Host": "gpu-node-2", "Score": 0}]
    args["Pod"]["metadata"]["annotations"]["headroom.dev/placement-policy"] = "spread"
    body = client.post("/prioritize", json=args).get_json()
    assert body == [{"Host": "gpu-node-1", "Score": 5}, {"Host": "gpu-node-2", "Score": 10}]


def test_a_pod_without_gpus_passes_every_node() -> None:
    client, _ = make_client()
    args = fixture("filter-args-node-names.json")
    args["Pod"] = pod("cpu-only", memory=None, shared=False)
    args["NodeNames"] = ["gpu-node-1", "elsewhere"]
    body = client.post("/filter", json=args).get_json()
    assert body["NodeNames"] == ["gpu-node-1", "elsewhere"]


@pytest.mark.parametrize(
    ("annotation", "value", "words"),
    [
        ("headroom.dev/gpu-memory", "lots", "headroom.dev/gpu-memory: not a quantity"),
        ("headroom.dev/placement-policy", "tight", "headroom.dev/placement-policy: expected"),
    ],
)
def test_a_pod_with_bad_annotations_gets_the_error(annotation: str, value: str, words: str) -> None:
    client, _ = make_client()
    args = fixture("filter-args-node-names.json")
    args["Pod"]["metadata"]["annotations"][annotation] = value
    body = client.post("/filter", json=args).get_json()
    assert words in body["Error"]


def test_standby_and_unsynced_extenders_refuse_so_the_scheduler_retries() -> None:
    standby, _ = make_client(leading=False)
    body = standby.post("/filter", json=fixture("filter-args-node-names.json")).get_json()
    assert body["Error"].startswith("extender on standby")
    assert standby.post("/bind", json=fixture("bind-args.json")).get_json()["Error"]
    assert (
        standby.post("/prioritize", json=fixture("prioritize-args-node-names.json")).status_code
        == 503
    )
    syncing, _ = make_client(synced=False)
    body = syncing.post("/filter", json=fixture("filter-args-node-names.json")).get_json()
    assert body["Error"].startswith("extender not ready")
    assert syncing.get("/readyz").status_code == 503


@pytest.mark.parametrize(
    ("path", "payload", "words"),
    [
        ("/filter", b"{not json", "body: expected JSON"),
        ("/filter", b"[]", "body: expected a JSON object"),
        ("/filter", b'{"Pod": {}}', "Pod: expected a Pod object"),
        ("/filter", b'{"Pod": {"metadata": {}}}', "NodeNames or Nodes"),
        ("/filter", b'{"Pod": {"metadata": {}}, "NodeNames": [1]}', "NodeNames: expected a list"),
        ("/prioritize", b'{"Pod": {"metadata": {}}, "Nodes": {"items": [{}]}}', "Nodes.items"),
        (
            "/filter",
            b'{"Pod": {"metadata": {}}, "Nodes": {"items": [{"metadata": []}]}}',
            "Nodes.items[0].metadata: expected an object",
        ),
        (
            "/filter",
            b'{"Pod": {"metadata": {}}, "Nodes": {"items": [{"metadata": {"name": 7}}]}}',
            "Nodes.items[0].metadata.name: expected a non-empty string",
        ),
        ("/filter", b"[" * 5000 + b"]" * 5000, "body: JSON nested too deeply"),
        ("/prioritize", b'{"Pod": ' * 5000 + b"{}" + b"}" * 5000, "body: JSON nested too deeply"),
        ("/bind", b"[" * 5000, "body: "),
        (
            "/filter",
            b'{"Pod": {"metadata": {"name": "\xff\xfe"}}}'.decode("unicode_escape").encode(
                "latin-1"
            ),
            "body: expected JSON",
        ),  # not UTF-8
        ("/bind", b'{"PodName": "p"}', "PodNamespace: expected a non-empty string"),
    ],
)
def test_malformed_bodies_get_400_with_a_json_error(path: str, payload: bytes, words: str) -> None:
    client, _ = make_client()
    response = client.post(path, data=payload, content_type="application/json")
    assert response.status_code == 400
    assert words in response.get_json()["error"]


KEYS = [
    "Pod",
    "NodeNames",
    "Nodes",
    "metadata",
    "items",
    "annotations",
    "PodUID",
    "spec",
    "containers",
    "initContainers",
    "resources",
    "limits",
    "requests",
    "nvidia.com/gpu",
    "headroom.dev/gpu-memory",
    "headroom.dev/gpu-sharing",
    "headroom.dev/placement-policy",
    "name",
    "uid",
    "status",
    "phase",
]


@settings(max_examples=1000)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=8),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)
        ),
        max_leaves=16,
    ),
    st.sampled_from(["/filter", "/prioritize", "/bind"]),
)
def test_random_bodies_never_cause_a_server_error(payload: object, path: str) -> None:
    client, _ = make_client()
    response = client.post(path, json=payload)
    assert response.status_code in (200, 400)
    assert response.is_json


def leaf_paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a JSON value, the value itself included."""
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += leaf_paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += leaf_paths(item, (*path, index))
    return found


def replaced(value: Any, path: tuple[Any, ...], new: object) -> Any:
    if not path:
        return new
    head, *rest = path
    copy: Any = dict(value) if isinstance(value, dict) else list(value)
    copy[head] = replaced(value[head], tuple(rest), new)
    return copy


REAL_BODIES = {
    "/filter": ["filter-args-node-names.json", "filter-args-nodes.json"],
    "/prioritize": ["prioritize-args-node-names.json"],
    "/bind": ["bind-args.json"],
}
WRONG: st.SearchStrategy[object] = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=4)
    | st.just([])
    | st.just({})
    | st.just([[[]]])
    | st.just({"metadata": []})
)


@settings(max_examples=600)
@given(
    st.sampled_from([(verb, name) for verb, files in REAL_BODIES.items() for name in files]),
    st.data(),
)
def test_a_wrong_type_at_any_depth_of_a_real_body_is_a_400_or_an_answer(
    case: tuple[str, str], data: st.DataObject
) -> None:
    verb, name = case
    real = fixture(name)
    path = data.draw(st.sampled_from(leaf_paths(real)))
    client, _ = make_client()
    response = client.post(verb, json=replaced(real, path, data.draw(WRONG)))
    assert response.status_code in (200, 400), (path, response.get_data(as_text=True))
    assert response.is_json


def test_health_readiness_and_metrics() -> None:
    client, _ = make_client()
    client.post("/filter", json=fixture("filter-args-node-names.json"))
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    text = client.get("/metrics").get_data(as_text=True)
    assert 'headroom_extender_filter_nodes_total{result="memory"} 1.0' in text
    assert 'headroom_extender_verb_seconds_count{verb="filter"} 1.0' in text


class Part:
    """A running part that notes when it is started and stopped."""

    def __init__(self, name: str, journal: list[str]) -> None:
        self.name, self.journal = name, journal

    def start(self) -> None:
        self.journal.append(f"start {self.name}")

    def stop(self) -> None:
        self.journal.append(f"stop {self.name}")


def test_building_the_app_starts_nothing_and_the_serving_edge_owns_the_lifecycle() -> None:
    journal: list[str] = []
    _, runtime = make_client()
    runtime.parts = [Part("caches", journal), Part("controllers", journal)]
    app = create_app(runtime=runtime)
    assert journal == []
    lifecycle = app.extensions[LIFECYCLE_KEY]
    assert lifecycle is runtime
    lifecycle.start()
    lifecycle.stop()
    # The controllers read the caches: they start after them and stop before them.
    assert journal == ["start caches", "start controllers", "stop controllers", "stop caches"]


def test_the_app_needs_a_config_or_a_runtime() -> None:
    with pytest.raises(TypeError, match="ExtenderConfig"):
        create_app()


def test_gc_freeze_waits_for_the_caches_then_makes_the_summaries_and_freezes() -> None:
    made: list[int] = []

    class Syncing:
        def __init__(self) -> None:
            self.asked = 0

        def wait_synced(self, timeout_seconds: float) -> bool:
            self.asked += 1
            return self.asked > 2  # synced at the third look

    cache = Syncing()
    freeze = GcFreeze([cache], before=lambda: made.append(gc.get_freeze_count()))  # type: ignore[list-item]
    frozen_before = gc.get_freeze_count()
    freeze.start()
    try:
        wait_for(lambda: gc.get_freeze_count() > frozen_before, timeout_seconds=10)
    finally:
        freeze.stop()
        gc.unfreeze()
    assert cache.asked == 3
    assert made == [frozen_before]  # the summaries were made before the freeze


def test_full_node_objects_nested_deep_are_answered_as_sent() -> None:
    client, _ = make_client()
    deep: object = "x"
    for _ in range(400):  # deeper than orjson writes (254)
        deep = [deep]
    items = [{"metadata": {"name": "gpu-node-2"}, "spec": {"deep": deep}}]
    response = client.post("/filter", json={"Pod": {"metadata": {}}, "Nodes": {"items": items}})
    assert response.status_code == 200
    assert response.get_json()["Nodes"]["items"] == items
