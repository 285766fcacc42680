"""The summary's independent overcommit check and its verdict, on hand-made placements."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from tooling.demo.dra import Held
from tooling.demo.kubelet import RunningPod
from tooling.demo.model import NodeGroup, OutsideProcess
from tooling.demo.nodes import SimNode
from tooling.demo.summary import Record, build_summary, overcommits, render

GI = 2**30


def node(tmp_path: Path, *, outside_gi: int = 0, lost: tuple[int, ...] = ()) -> SimNode:
    outside = (OutsideProcess("render", 0, outside_gi * GI),) if outside_gi else ()
    group = NodeGroup("a100", 1, 2, "NVIDIA A100-SXM4-80GB", 80 * GI, outside, lost)
    return SimNode("a100", group, tmp_path / "a100")


def pod(name: str, gpus: tuple[int, ...], memory_gi: int, *, shared: bool) -> RunningPod:
    return RunningPod(
        uid=name,
        namespace="demo",
        name=name,
        node="a100",
        ip="127.0.0.2",
        gpus=gpus,
        memory_bytes=memory_gi * GI,
        shared=shared,
        labels={},
    )


def test_shared_pods_that_fit_with_the_outside_memory_are_fine(tmp_path: Path) -> None:
    nodes = {"a100": node(tmp_path, outside_gi=40)}
    pods = [
        pod("a", (0,), 20, shared=True),
        pod("b", (0,), 20, shared=True),
        pod("c", (1,), 80, shared=False),
    ]
    assert overcommits(pods, nodes) == {}


def test_too_much_memory_on_one_gpu_is_an_overcommit(tmp_path: Path) -> None:
    nodes = {"a100": node(tmp_path, outside_gi=50)}
    wrong = overcommits([pod("a", (0,), 20, shared=True), pod("b", (0,), 20, shared=True)], nodes)
    assert wrong == {"a100/0": "a, b (40Gi) + 50Gi outside > 80Gi"}


def test_an_exclusive_gpu_with_a_second_pod_is_an_overcommit(tmp_path: Path) -> None:
    nodes = {"a100": node(tmp_path)}
    wrong = overcommits([pod("a", (1,), 10, shared=False), pod("b", (1,), 10, shared=True)], nodes)
    assert wrong == {"a100/1": "exclusive GPU holds a, b"}


def test_a_pod_on_a_lost_gpu_is_an_overcommit(tmp_path: Path) -> None:
    nodes = {"a100": node(tmp_path, lost=(1,))}
    assert overcommits([pod("a", (1,), 10, shared=False)], nodes) == {"a100/1": "a on a lost GPU"}


def test_a_gpu_given_to_a_claim_its_live_memory_cannot_hold_is_an_overcommit(
    tmp_path: Path,
) -> None:
    # The kubelet runs a claim pod on the GPU its claim holds: 30Gi where 60Gi is held outside.
    nodes = {"a100": node(tmp_path, outside_gi=60)}
    wrong = overcommits([pod("reranker-a", (0,), 30, shared=False)], nodes)
    assert wrong == {"a100/0": "reranker-a (30Gi) + 60Gi outside > 80Gi"}
    # Two shares of one GPU through consumable capacity that fit with what is held outside.
    shares = [pod("a", (0,), 10, shared=True), pod("b", (0,), 10, shared=True)]
    assert overcommits(shares, nodes) == {}


def test_the_summary_lists_the_gpu_each_claim_held() -> None:
    record = Record(model="m", max_replicas=6)
    uuid = "GPU-ea23bd98-2f0d-5f50-a5f7-2311be50da66"
    held = Held("reranker-a", "h100-dra", "reranker-a-gpu-x1", uuid, 0)
    record.held[(held.pod, held.claim, held.uuid)] = held
    summary = build_summary(
        record,
        scenario="t",
        expect_cap=False,
        expect_lift=False,
        events=[],
        pending=[],
        wall_seconds=1.0,
        processes=[],
        workdir=Path("/tmp/x"),
    )
    assert summary.to_json()["draClaims"] == [
        {
            "pod": "reranker-a",
            "node": "h100-dra",
            "claim": "reranker-a-gpu-x1",
            "uuid": uuid,
            "gpu": 0,
        }
    ]
    text = render(summary)
    assert "DRA claims       1 pod(s) held GPUs" in text
    assert f"reranker-a         h100-dra/0 {uuid} (claim reranker-a-gpu-x1)" in text


def verdict(record: Record, **kw: Any) -> dict[str, bool]:
    summary = build_summary(
        record,
        scenario="t",
        expect_cap=True,
        expect_lift=True,
        events=kw.get("events", []),
        pending=[],
        wall_seconds=1.0,
        processes=[],
        workdir=Path("/tmp/x"),
    )
    assert render(summary)  # renders whatever the verdict
    return {c["name"]: c["ok"] for c in summary.checks} | {"passed": summary.passed}


def test_the_verdict_needs_the_cap_reached_and_lifted_and_no_overcommit() -> None:
    record = Record(model="m", max_replicas=6, cap_reached=True, cap=3, lifted_to=4, peak_applied=4)
    record.phase_done("rise", True, 3.0)
    assert verdict(record)["passed"]
    assert not verdict(replace(record, lifted_to=None))["passed"]
    assert not verdict(replace(record, cap=None))["passed"]
    assert not verdict(Record(**{**record.__dict__, "overcommits": {"a/0": "x"}}))["passed"]
    assert not verdict(replace(record, peak_applied=7))["passed"]
    failed = replace(record, phases=[])
    failed.phase_done("rise", False, 90.0)
    assert not verdict(failed)["passed"]


def test_refusals_are_counted_per_pod_from_the_scheduler_events() -> None:
    record = Record(model="m", max_replicas=6)
    refused = "0/2 nodes are available: 1 needs 20Gi on 1 GPU"
    events: list[dict[str, Any]] = [
        {
            "reason": "FailedScheduling",
            "count": 3,
            "involvedObject": {"name": "p1"},
            "message": refused,
        },
        {"reason": "FailedScheduling", "involvedObject": {"name": "p2"}, "message": refused},
        {"reason": "Scheduled", "involvedObject": {"name": "p3"}, "message": "ok"},
    ]
    summary = build_summary(
        record,
        scenario="t",
        expect_cap=False,
        expect_lift=False,
        events=events,
        pending=["p2"],
        wall_seconds=1.0,
        processes=[],
        workdir=Path("/tmp/x"),
    )
    assert summary.pods_refused == 2
    assert summary.refused_reasons == [
        {"message": "0/2 nodes are available: 1 needs 20Gi on 1 GPU", "count": 4}
    ]
    assert "still pending: p2" in render(summary)
