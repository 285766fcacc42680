"""The scenario file: the packaged stories load, and every bad field is refused by name."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from headroom.quantity import parse_bytes
from tooling.demo.model import Claim
from tooling.demo.scenario import SCENARIOS_DIR, ScenarioError, load, parse

SHORT = SCENARIOS_DIR / "short.yaml"
DEFAULT = SCENARIOS_DIR / "default.yaml"


def short() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(SHORT.read_text())
    return doc


def test_the_default_story_has_the_node_kinds_the_issue_names() -> None:
    scenario = load(DEFAULT)
    gpus = {g.name: (g.count, g.gpus, g.gpu_memory_bytes) for g in scenario.nodes}
    assert gpus["a100"] == (2, 8, parse_bytes("80Gi", field="x"))
    assert gpus["l4"] == (2, 4, parse_bytes("24Gi", field="x"))
    assert any(g.outside and g.outside[0].gpu == 0 for g in scenario.nodes)
    assert any(g.lost_gpus for g in scenario.nodes)
    assert scenario.node_names()[:2] == ["a100-1", "a100-2"]
    assert [p.until for p in scenario.timeline].count("capped") == 1
    assert scenario.started_later() == {"batch-infer", "reranker"}


def test_both_stories_have_a_dra_pool_and_a_claim_workload_started_by_the_timeline() -> None:
    for path in (DEFAULT, SHORT):
        scenario = load(path)
        (pool,) = [g for g in scenario.nodes if g.dra]
        assert pool.outside and not pool.dra_shared
        (claimed,) = [w for w in scenario.workloads if w.claim is not None]
        assert claimed.claim == Claim(count=1) and claimed.ask.memory == "30Gi"
        assert claimed.name in scenario.started_later()


def test_a_memory_share_parses_on_a_shared_dra_pool() -> None:
    doc = short()
    doc["nodes"][2]["draShared"] = True
    doc["workloads"][2] = {"name": "reranker", "parallelism": 3, "claim": {"memory": "20Gi"}}
    scenario = parse(doc)
    assert scenario.nodes[2].dra_shared
    workload = scenario.workloads[2]
    assert workload.claim == Claim(count=1, memory="20Gi", memory_bytes=20 * 2**30)
    assert workload.ask.memory == "" and workload.ask.memory_bytes == 0


def test_only_the_gpus_can_cap_the_peak_in_both_stories() -> None:
    for path in (DEFAULT, SHORT):
        scenario = load(path)
        peak = max(p.load for p in scenario.timeline if p.load is not None)
        # Were the peak to ask for maxReplicas or more, the limit would read TooMany, and the
        # story would not show the GPU cap.
        assert scenario.scaler.replicas_for(peak) < scenario.scaler.max_replicas, path
        story = [p.until for p in scenario.timeline if p.until != "seconds"]
        assert story == ["capped", "lifted", "settled"], path


def test_replicas_for_the_load_follow_the_seed_formula() -> None:
    scaler = load(SHORT).scaler  # target 10, 1..6
    assert [scaler.replicas_for(x) for x in (0, 8, 10, 10.5, 50, 1000)] == [1, 1, 1, 2, 5, 6]


Mutation = Callable[[dict[str, Any]], object]
BAD: list[tuple[str, Mutation, str]] = [
    ("nodes[0].gpuMemory", lambda d: d["nodes"][0].pop("gpuMemory"), "required"),
    ("nodes[0].gpuMemroy", lambda d: d["nodes"][0].update(gpuMemroy="80Gi"), "unknown field"),
    ("nodes[0].gpus", lambda d: d["nodes"][0].update(gpus=0), "integer 1..16"),
    (
        "nodes[0].outside[0].gpu",
        lambda d: d["nodes"][0]["outside"][0].update(gpu=4),
        "integer 0..3",
    ),
    (
        "nodes[0].outside[0].memory",
        lambda d: d["nodes"][0]["outside"][0].update(memory="90Gi"),
        "more than the GPU holds",
    ),
    ("nodes[1].lostGpus", lambda d: d["nodes"][1].update(lostGpus=[2]), "GPU indexes 0..1"),
    ("nodes[1].name", lambda d: d["nodes"][1].update(name="L4 Lost"), "lower-case"),
    ("model.gpuMemory", lambda d: d["model"].update(gpuMemory="lots"), "not a quantity"),
    ("model.sharing", lambda d: d["model"].update(sharing="yes"), "true or false"),
    ("scaler.targetValue", lambda d: d["scaler"].update(targetValue=0), "number > 0"),
    ("scaler.minReplicas", lambda d: d["scaler"].update(minReplicas=9), "must not exceed"),
    ("scaler.spec.metrics", lambda d: d["scaler"]["spec"].update(metrics=[]), "unknown field"),
    ("workloads[1].product", lambda d: d["workloads"][1].update(product="H100"), "no node has"),
    ("timeline", lambda d: d.update(timeline=[]), "non-empty list"),
    ("timeline[0].until", lambda d: d["timeline"][0].update(until="never"), "one of seconds"),
    ("timeline[0].load", lambda d: d["timeline"][0].update(load=-1), "number >= 0"),
    (
        "timeline[1].actions[0].endOutside",
        lambda d: d["timeline"][1]["actions"][0].update(endOutside="nope"),
        "no outside process named 'nope'",
    ),
    (
        "timeline[1].actions[0]",
        lambda d: d["timeline"][1].update(actions=[{"explode": "x"}]),
        "expected one of",
    ),
    (
        "timeline[2].timeoutSeconds",
        lambda d: d["timeline"][2].update(timeoutSeconds="1m"),
        "seconds",
    ),
    ("expect.capLifted", lambda d: d.update(expect={"capLifted": "sure"}), "true or false"),
    ("workloads", lambda d: d["workloads"][0].update(name="llm-server"), "must differ"),
    # The DRA pool (nodes[2]) and the claim workload (workloads[2]) of the short story.
    ("nodes[2].dra", lambda d: d["nodes"][2].update(dra="yes"), "true or false"),
    (
        "nodes[2].draShared",
        lambda d: d["nodes"][2].update(dra=False, draShared=True),
        "only with dra: true",
    ),
    ("workloads[2].claim", lambda d: d["workloads"][2].update(claim={}), "expected {count: N}"),
    ("workloads[2].claim", lambda d: d["workloads"][2].update(claim=2), "a mapping"),
    (
        "workloads[2].claim.size",
        lambda d: d["workloads"][2].update(claim={"size": 1}),
        "unknown field",
    ),
    (
        "workloads[2].claim.count",
        lambda d: d["workloads"][2].update(claim={"count": 0}),
        "integer 1..16",
    ),
    (
        "workloads[2].claim.count",
        lambda d: d["workloads"][2].update(claim={"count": 3}),
        "no node group with dra: true has 3 GPU(s)",
    ),
    (
        "workloads[2].claim",
        lambda d: d["nodes"][2].update(dra=False),
        "(none has dra: true)",
    ),
    (
        "workloads[2].claim.memory",
        lambda d: d["workloads"][2].update(claim={"memory": "lots"}),
        "not a quantity",
    ),
    (
        "workloads[2].claim.memory",
        lambda d: d["workloads"][2].update(claim={"memory": "20Gi"}),
        "needs a node group with draShared: true",
    ),
    (
        "workloads[2].claim.memory",
        lambda d: (
            d["nodes"][2].update(draShared=True)
            or d["workloads"][2].update(claim={"memory": "90Gi"})
        ),
        "whose GPUs hold it",
    ),
    ("workloads[2].gpus", lambda d: d["workloads"][2].update(gpus=1), "use claim.count"),
    ("workloads[2].sharing", lambda d: d["workloads"][2].update(sharing=True), "claim.memory"),
    (
        "workloads[2].product",
        lambda d: d["workloads"][2].update(product="NVIDIA H100 80GB HBM3"),
        "not with claim",
    ),
    (
        "workloads[1].product",  # DRA nodes carry no product label: a nodeSelector cannot match
        lambda d: d["workloads"][1].update(product="NVIDIA H100 80GB HBM3"),
        "no node has",
    ),
]


@pytest.mark.parametrize(("field", "mutate", "words"), BAD, ids=[b[0] for b in BAD])
def test_a_bad_field_is_refused_naming_it(field: str, mutate: Mutation, words: str) -> None:
    doc = copy.deepcopy(short())
    parse(doc)  # the unmutated story is fine: the mutation alone makes it fail
    mutate(doc)
    with pytest.raises(ScenarioError) as caught:
        parse(doc)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")
    assert words in str(caught.value)


def test_the_command_reports_a_bad_scenario_with_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tooling.demo.cli import main  # noqa: PLC0415

    doc = short()
    doc["scaler"]["maxReplicas"] = "many"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert main(["--scenario", str(path)]) == 2
    err = capsys.readouterr().err
    assert "scaler.maxReplicas: expected an integer 1..100 (got 'many')" in err
    assert main(["--scenario", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml" in capsys.readouterr().err


def test_not_yaml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("nodes: [\n")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        load(path)


def test_a_used_workdir_or_a_missing_summary_directory_is_refused_up_front(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tooling.demo.cli import main  # noqa: PLC0415

    used = tmp_path / "used"
    (used / "cluster").mkdir(parents=True)
    assert main(["--scenario", str(SHORT), "--workdir", str(used)]) == 2
    assert f"--workdir: {used} is not an empty directory" in capsys.readouterr().err
    missing = tmp_path / "nowhere" / "summary.json"
    assert main(["--scenario", str(SHORT), "--summary-json", str(missing)]) == 2
    assert "--summary-json: the directory" in capsys.readouterr().err
