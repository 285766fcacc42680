"""`kubectl headroom why POD` against a fake API: the extender's own reasons and scores, node by
node (compared with what the extender's /filter and /prioritize answer for the same objects), the
nodes the scheduler keeps off first, and what it says of pods that are not pending."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cli import live, whytext
from cli.cluster import CliError
from cli.why import BOUND, FINISHED, NO_GPU, PENDING, REFUSED, UNMANAGED, Explanation, explain
from extender.verbs import Settings
from headroom import names
from headroom.demand import GpuDemand
from headroom.fit import NodeSnapshot, Policy, place
from headroom.report import report_from_status
from tests.cli.fakecluster import cluster, extender_client, fake_kube
from tests.extender.builders import GI, NOW, gpunode, pod
from tests.headroom.dra_builders import claim, dra_pod
from tests.kubeapi.fake import FakeKube
from tooling.dra import resource_slice

SETTINGS = Settings(staleness_seconds=90)
POOL = {"pool": "gpu"}


def node(name: str, *, labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": POOL if labels is None else labels}, "spec": spec}


def want(memory: str | None = "40Gi", **kwargs: Any) -> dict[str, Any]:
    """The pending pod the tests ask about: ml/want, on nodes of pool gpu."""
    obj = pod("want", memory=memory, **kwargs)
    obj["metadata"]["name"] = "want"
    obj["spec"]["nodeSelector"] = dict(POOL)
    return obj


def why(kube: FakeKube, name: str = "want", settings: Settings = SETTINGS) -> Explanation:
    return explain(
        cluster(kube),
        name,
        namespace="ml",
        now_unix_seconds=NOW,
        settings=settings,
        load=live.load,
    )


def nowhere_scene() -> FakeKube:
    """A 40Gi shared pod and no node that can take it, each for another reason."""
    holder = pod("holder", memory="60Gi", node_name="busy-2", assigned="GPU-busy-2-0")
    return fake_kube(
        gpunodes=[
            gpunode("busy-1", [80], used_gi=50),
            gpunode("busy-2", [80]),
            gpunode("old", [80], age_seconds=500),
            gpunode("small", [24, 24]),
            gpunode("cordoned", [80]),
            gpunode("elsewhere", [80]),
        ],
        nodes=[
            node("busy-1"),
            node("busy-2"),
            node("cordoned", unschedulable=True),
            node("elsewhere", labels={"pool": "cpu"}),
            node("no-agent"),
            node("old"),
            node("small"),
        ],
        pods=[want(), holder],
    )


def ask_extender(
    kube: FakeKube, verb: str, node_names: list[str], settings: Settings = SETTINGS
) -> Any:
    """The extender's answer to /filter or /prioritize for ml/want on these nodes."""
    body = {"Pod": kube.request("GET", "/api/v1/namespaces/ml/pods/want"), "NodeNames": node_names}
    response = extender_client(kube, settings=settings).post(f"/{verb}", json=body)
    assert response.status_code == 200
    return response.get_json()


def filter_answer(kube: FakeKube, node_names: list[str]) -> dict[str, Any]:
    answer: dict[str, Any] = ask_extender(kube, "filter", node_names)
    return answer


def test_a_pod_that_fits_nowhere_gets_the_extenders_reasons_word_for_word() -> None:
    kube = nowhere_scene()
    explanation = why(kube)
    assert explanation.state == PENDING
    asked = [v.node for v in explanation.nodes if v.kind != "scheduler"]
    answer = filter_answer(kube, asked)
    assert answer["NodeNames"] == []
    assert {v.node: v.reason for v in explanation.nodes if v.node in asked} == answer["FailedNodes"]
    unresolvable = {v.node for v in explanation.nodes if not v.resolvable}
    assert unresolvable == set(answer["FailedAndUnresolvableNodes"]) == {"small"}
    # Best first: the closest (30Gi free, then 20Gi), then the stale report, no report, too small,
    # and the nodes the scheduler never asks Headroom about.
    assert [(v.node, v.kind) for v in explanation.nodes] == [
        ("busy-1", "memory"),
        ("busy-2", "memory"),
        ("old", "stale"),
        ("no-agent", "no-report"),
        ("small", "too-small"),
        ("cordoned", "scheduler"),
        ("elsewhere", "scheduler"),
    ]
    assert explanation.summary == (
        "fits no node: 2 nodes have no GPU with 40Gi free, 1 node's report is stale, "
        "1 node has no GPU report, 1 node has GPUs too small or too few, "
        "2 nodes kept off by the scheduler before Headroom (cordoned 1, node selector/affinity 1)"
    )


def test_the_reasons_table_names_each_node_and_says_which_nodes_were_never_asked() -> None:
    text = whytext.render(why(nowhere_scene()))
    lines = text.splitlines()
    assert lines[:2] == [
        "pod ml/want is pending: not bound to a node yet",
        "demand: 40Gi on 1 GPU, shared (policy binpack)",
    ]
    row = next(line for line in lines if line.startswith("busy-1 "))
    assert row.split(None, 3) == [
        "busy-1",
        "no",
        "-",
        "needs 40Gi on 1 GPU; best free 30Gi on GPU 0 (GPU-busy-1-0)",
    ]
    assert "not asked: the node is cordoned (spec.unschedulable)" in text
    assert lines[-1].startswith("fits no node: 2 nodes have no GPU with 40Gi free")


def fits_scene(**pod_kwargs: Any) -> FakeKube:
    return fake_kube(
        gpunodes=[
            gpunode("half", [80], used_gi=60),
            gpunode("light", [80], used_gi=10),
            gpunode("empty", [80, 80]),
            gpunode("tiny", [12]),
        ],
        nodes=[node("empty"), node("half"), node("light"), node("tiny")],
        pods=[want("15Gi", **pod_kwargs)],
    )


def snapshots(kube: FakeKube) -> list[NodeSnapshot]:
    objs = kube.request("GET", "/apis/headroom.dev/v1alpha1/gpunodes")["items"]
    return [
        NodeSnapshot(o["metadata"]["name"], report_from_status(o["metadata"]["name"], o["status"]))
        for o in objs
    ]


@pytest.mark.parametrize("policy", [Policy.BINPACK, Policy.SPREAD])
def test_nodes_that_fit_carry_the_extenders_scores_and_the_best_is_where_place_puts_it(
    policy: Policy,
) -> None:
    kube = fits_scene()
    settings = Settings(staleness_seconds=90, policy=policy)
    explanation = why(kube, settings=settings)
    fitting = [v for v in explanation.nodes if v.fits]
    assert {v.node for v in fitting} == {"half", "light", "empty"}
    scores = ask_extender(kube, "prioritize", [v.node for v in fitting], settings)
    assert {v.node: v.score for v in fitting} == {s["Host"]: s["Score"] for s in scores}
    placement = place(
        GpuDemand(gpu_count=1, memory_bytes=15 * GI, shared=True),
        snapshots(kube),
        now_unix_seconds=NOW,
        staleness_seconds=90,
        policy=policy,
    )
    assert placement is not None
    best = explanation.nodes[0]
    assert (best.node, tuple(g.uuid for g in best.gpus)) == (
        placement.node_name,
        placement.gpu_uuids,
    )
    assert explanation.summary.startswith(f"would go to {best.node}, GPU 0 ")
    assert explanation.nodes[-1].node == "tiny"  # the one that fails comes after every fit


def test_the_pods_own_policy_annotation_wins_over_the_flag() -> None:
    explanation = why(fits_scene(policy="spread"))
    assert (explanation.policy, explanation.nodes[0].node) == ("spread", "empty")


def test_nodes_scoring_the_same_are_said_to_be_the_schedulers_choice() -> None:
    kube = fake_kube(
        gpunodes=[gpunode("a", [80]), gpunode("b", [80])],
        nodes=[node("a"), node("b")],
        pods=[want()],
    )
    summary = why(kube).summary
    assert summary.startswith("would go to a, GPU 0 (GPU-a-0): score 0 of 10 (binpack)")
    assert "1 other node scores the same" in summary


def test_only_the_best_ten_nodes_show_unless_asked_and_json_has_every_node() -> None:
    names_ = [f"n{i:02}" for i in range(13)]
    kube = fake_kube(
        gpunodes=[gpunode(n, [80], used_gi=i) for i, n in enumerate(names_)],
        nodes=[node(n) for n in names_],
        pods=[want()],
    )
    explanation = why(kube)
    short = whytext.render(explanation)
    assert "... and 3 more nodes (--all-nodes shows every node)" in short
    assert sum(line.startswith("n") for line in short.splitlines()) == 10
    every = whytext.render(explanation, all_nodes=True)
    assert sum(line.startswith("n") for line in every.splitlines()) == 13
    data = whytext.as_json(explanation)
    assert len(data["nodes"]) == 13
    assert data["demand"] == {
        "gpu_count": 1,
        "memory_bytes": 40 * GI,
        "shared": True,
        "dra": False,
        "all_gpus": False,
        "text": "40Gi on 1 GPU",
    }


def test_a_dra_pod_whose_claim_is_allocated_fits_only_where_its_gpu_is() -> None:
    held = claim("model-gpu", devices=[("a", "gpu-1")], reserved_for=["want"])
    pending = dra_pod("want", "model-gpu")
    pending["spec"]["schedulerName"] = names.SCHEDULER_NAME
    kube = fake_kube(
        gpunodes=[gpunode("a", [80, 80]), gpunode("b", [80])],
        nodes=[node("a", labels={}), node("b", labels={})],
        pods=[pending],
        claims=[held],
        slices=[
            resource_slice("a", [("GPU-a-0", 80 * GI), ("GPU-a-1", 80 * GI)]),
            resource_slice("b", [("GPU-b-0", 80 * GI)]),
        ],
    )
    explanation = why(kube)
    assert [(v.node, v.fits) for v in explanation.nodes] == [("a", True), ("b", False)]
    assert [(g.index, g.uuid) for g in explanation.nodes[0].gpus] == [(1, "GPU-a-1")]
    answer = filter_answer(kube, ["a", "b"])
    assert answer["NodeNames"] == ["a"]
    assert explanation.nodes[1].reason == answer["FailedNodes"]["b"]
    assert "its ResourceClaims hold GPUs on a" in explanation.nodes[1].reason
    assert not explanation.nodes[1].resolvable


def test_a_pod_not_found_is_an_error_naming_it() -> None:
    with pytest.raises(CliError, match='pod "ghost" not found in namespace ml'):
        why(fake_kube(), "ghost")


def test_a_bound_pod_says_where_and_on_which_gpus() -> None:
    running = pod("want", node_name="a", assigned="GPU-a-1", phase="Running")
    kube = fake_kube(
        gpunodes=[gpunode("a", [80, 80], pods={1: [("want", 12)]})],
        nodes=[node("a")],
        pods=[running],
    )
    explanation = why(kube)
    assert explanation.state == BOUND
    assert explanation.headline == (
        "pod ml/want is not pending: it is bound to a (Running) with GPU 1 (GPU-a-1)"
    )
    data = json.loads(json.dumps(whytext.as_json(explanation)))
    assert data["bound_node"] == "a"
    assert data["bound_gpus"] == [{"index": 1, "uuid": "GPU-a-1"}]


def test_a_bound_pod_whose_gpus_no_one_named_yet_says_so() -> None:
    starting = pod("want", memory=None, shared=False, gpus=1, node_name="a")
    kube = fake_kube(gpunodes=[gpunode("a", [80])], nodes=[node("a")], pods=[starting])
    assert why(kube).headline.endswith(
        "with GPUs not known to Headroom yet (the node agent has not reported the pod)"
    )


@pytest.mark.parametrize(
    ("change", "state", "words"),
    [
        ({"status": {"phase": "Failed"}}, FINISHED, "pod ml/want is Failed"),
        (
            {"spec": {"schedulerName": "default-scheduler"}},
            UNMANAGED,
            "is not managed by Headroom: neither it nor its namespace carries "
            "headroom.dev/managed=true, and its schedulerName is default-scheduler",
        ),
        (
            {"spec": {"schedulerName": "volcano"}},
            UNMANAGED,
            "it names its own scheduler 'volcano'",
        ),
        (
            {
                "spec": {"schedulerName": "default-scheduler"},
                "metadata": {"labels": {names.MANAGED_LABEL: "true"}},
            },
            UNMANAGED,
            "the webhook did not mutate it",
        ),
        (
            {"metadata": {"annotations": {names.GPU_MEMORY_ANNOTATION: "lots"}}},
            REFUSED,
            "the extender refuses it: headroom.dev/gpu-memory:",
        ),
        (
            {"metadata": {"annotations": {names.PLACEMENT_POLICY_ANNOTATION: "random"}}},
            REFUSED,
            'expected "binpack" or "spread"',
        ),
    ],
)
def test_pods_not_for_the_table_say_why(change: dict[str, Any], state: str, words: str) -> None:
    obj = want()
    for part, fields in change.items():
        for key, value in fields.items():
            if isinstance(value, dict) and isinstance(obj[part].get(key), dict):
                obj[part][key].update(value)
            else:
                obj[part][key] = value
    explanation = why(fake_kube(gpunodes=[gpunode("a", [80])], nodes=[node("a")], pods=[obj]))
    assert explanation.state == state
    assert words in explanation.headline
    assert explanation.nodes == ()


def test_a_namespace_that_opts_in_is_named_when_the_webhook_missed_its_pod() -> None:
    obj = want()
    obj["spec"]["schedulerName"] = "default-scheduler"
    opted = {"metadata": {"name": "ml", "labels": {names.MANAGED_LABEL: "true"}}}
    kube = fake_kube(pods=[obj], namespaces=[opted])
    assert "the webhook did not mutate it" in why(kube).headline


def test_a_pod_without_gpus_is_passed_everywhere() -> None:
    kube = fake_kube(nodes=[node("a")], pods=[want(memory=None, shared=False)])
    explanation = why(kube)
    assert explanation.state == NO_GPU
    assert "asks for no GPU" in explanation.headline


def test_a_claim_that_does_not_exist_is_the_extenders_error() -> None:
    pending = dra_pod("want", "missing")
    pending["spec"]["schedulerName"] = names.SCHEDULER_NAME
    explanation = why(fake_kube(nodes=[node("a")], pods=[pending]))
    assert explanation.state == REFUSED
    assert "spec.resourceClaims[0]" in explanation.headline


def test_gates_and_the_schedulers_own_message_are_shown() -> None:
    obj = want()
    obj["spec"]["schedulingGates"] = [{"name": "example.com/quota"}]
    obj["status"]["conditions"] = [
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "0/4 nodes are available: 4 Insufficient cpu.",
        }
    ]
    kube = fake_kube(gpunodes=[gpunode("a", [80])], nodes=[node("a")], pods=[obj])
    text = whytext.render(why(kube))
    assert "scheduling gates hold it back until removed: example.com/quota" in text
    assert "the scheduler said: 0/4 nodes are available: 4 Insufficient cpu." in text
    assert text.splitlines()[-1].startswith("Headroom has room for it now")


def test_the_staleness_limit_is_the_one_given() -> None:
    kube = fake_kube(
        gpunodes=[gpunode("a", [80], age_seconds=300)], nodes=[node("a")], pods=[want()]
    )
    assert why(kube).nodes[0].kind == "stale"
    assert why(kube, settings=Settings(staleness_seconds=600)).nodes[0].fits


def test_a_cluster_without_nodes_says_so() -> None:
    assert why(fake_kube(pods=[want()])).summary == "fits no node: the cluster has no nodes"
