"""`kubectl headroom top` against a fake API: GPUs most free first, free memory as `headroom
status` accounts it, and the pods on each GPU with the memory they commit there."""

from __future__ import annotations

import json

import pytest

from cli import live, status, top
from cli.cluster import CliError
from tests.cli.fakecluster import cluster, fake_kube
from tests.extender.builders import GI, NOW, gpunode, node, pod
from tests.headroom.dra_builders import claim, dra_pod
from tests.kubeapi.fake import FakeKube
from tooling.dra import device_taint_rule, resource_slice


def scene() -> FakeKube:
    """Node a: GPU 0 holds a shared pod the agent sees (declared 20Gi, using 12Gi) and a shared
    one starting (30Gi, not reported yet); GPU 1 an exclusive pod using 30Gi. Node b: one idle
    GPU with 5Gi of unattributed use, and a device-plugin pod starting whose GPU no one named."""
    return fake_kube(
        gpunodes=[
            gpunode("a", [80, 80], pods={0: [("seen", 12)], 1: [("whole", 30)]}),
            gpunode("b", [40, 40], used_gi=5),
        ],
        nodes=[node("a"), node("b")],
        pods=[
            pod("seen", memory="20Gi", node_name="a", assigned="GPU-a-0", phase="Running"),
            pod("starting", memory="30Gi", node_name="a", assigned="GPU-a-0"),
            pod("whole", memory=None, shared=False, gpus=1, node_name="a", phase="Running"),
            pod("unnamed", memory=None, shared=False, gpus=1, node_name="b"),
        ],
    )


def gather(kube: FakeKube, node: str | None = None) -> tuple[list[top.TopRow], list[str]]:
    return top.gather(
        live.load(cluster(kube)), now_unix_seconds=NOW, staleness_seconds=90, node=node
    )


def test_gpus_come_most_free_first_with_the_pods_on_each() -> None:
    rows, notes = gather(scene())
    assert [(r.node, r.gpu, r.free_bytes // GI) for r in rows] == [
        ("b", 0, 35),
        ("b", 1, 35),
        ("a", 0, 30),  # 80 - (max(20, 12) + 30 reserved)
        ("a", 1, 0),  # held whole
    ]
    by_gpu = {(r.node, r.gpu): r for r in rows}
    assert [
        (p.pod, p.committed_bytes // GI, p.whole_gpu, p.reported) for p in by_gpu["a", 0].pods
    ] == [
        ("ml/starting", 30, False, False),
        ("ml/seen", 20, False, True),
    ]
    assert [(p.pod, p.committed_bytes // GI, p.whole_gpu) for p in by_gpu["a", 1].pods] == [
        ("ml/whole", 30, True)
    ]
    assert by_gpu["b", 0].unattributed_bytes == 5 * GI
    assert notes == [
        "b: ml/unnamed holds a whole GPU the report does not show yet (the device plugin chose "
        "which)"
    ]


def test_free_memory_is_what_headroom_status_shows() -> None:
    kube = scene()
    rows, _ = gather(kube)
    shown, _ = status.gather(cluster(kube), now_unix_seconds=NOW)
    assert {(r.node, r.gpu): r.free_bytes for r in rows} == {
        (r.node, r.gpu): r.free_bytes for r in shown
    }


def test_the_table_has_one_line_per_gpu_with_free_over_total_and_the_pods() -> None:
    text = top.render(*gather(scene()))
    lines = text.splitlines()
    assert lines[0].split() == [
        "NODE", "GPU", "MODEL", "FREE/TOTAL", "HEALTHY", "REPORT-AGE", "PODS",
    ]  # fmt: skip
    assert lines[3].split(None, 6) == [
        "a",
        "0",
        "m",
        "30Gi/80Gi",
        "yes",
        "1s",
        "ml/starting (30Gi, starting), ml/seen (20Gi)",
    ]
    assert lines[4].endswith("ml/whole (whole GPU, 30Gi used)")
    assert lines[1].endswith("other processes (5Gi)")
    assert lines[-1].startswith("b: ml/unnamed holds a whole GPU")


def test_one_nodes_gpus_and_an_unknown_node_is_an_error() -> None:
    rows, _ = gather(scene(), node="a")
    assert {r.node for r in rows} == {"a"}
    with pytest.raises(CliError, match="--node ghost: no GPU report for the node"):
        gather(scene(), node="ghost")


def test_unhealthy_gpus_and_stale_reports_come_after_the_gpus_pods_can_get() -> None:
    kube = fake_kube(
        gpunodes=[gpunode("a", [40, 80]), gpunode("old", [80], age_seconds=200)],
        nodes=[node("a"), node("old")],
        slices=[resource_slice("a", [("GPU-a-0", 40 * GI), ("GPU-a-1", 80 * GI)])],
        rules=[device_taint_rule("drain", pool="a", device="gpu-1")],
    )
    rows, _ = gather(kube)
    # Free as `headroom status` counts it, but after every GPU a pod could get now.
    assert [(r.node, r.gpu, r.healthy, r.stale, r.free_bytes // GI) for r in rows] == [
        ("a", 0, True, False, 40),
        ("a", 1, False, False, 80),
        ("old", 0, True, True, 80),
    ]
    assert rows[1].health.startswith("device taint")
    text = top.render(rows, [])
    assert "NO: device taint" in text
    assert "200s (stale)" in text


def test_a_gpu_dra_allocated_to_a_pod_not_bound_yet_names_its_claim_holder() -> None:
    held = claim("model-gpu", devices=[("a", "gpu-0")], reserved_for=["next"])
    kube = fake_kube(
        gpunodes=[gpunode("a", [80])],
        nodes=[node("a")],
        pods=[dra_pod("next", "model-gpu")],
        claims=[held],
        slices=[resource_slice("a", [("GPU-a-0", 80 * GI)])],
    )
    rows, _ = gather(kube)
    assert [(p.pod, p.whole_gpu, p.reported) for p in rows[0].pods] == [("ml/next", True, False)]
    assert rows[0].free_bytes == 0


def test_json_has_every_gpu_and_the_notes() -> None:
    data = json.loads(json.dumps(top.as_json(*gather(scene()))))
    assert len(data["gpus"]) == 4
    assert data["gpus"][0]["node"] == "b"
    assert data["gpus"][2]["pods"][0] == {
        "pod": "ml/starting",
        "committed_bytes": 30 * GI,
        "whole_gpu": False,
        "reported": False,
    }
    assert len(data["notes"]) == 1


def test_no_reports_says_so() -> None:
    assert top.render(*gather(fake_kube(nodes=[node("a")]))) == (
        "no GPU reports (is the node agent running?)"
    )
