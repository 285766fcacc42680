"""Where a workload's replicas may go: nodeSelector and required node affinity, as the
scheduler judges them."""

from __future__ import annotations

from typing import Any

import pytest

from extender.scaler.eligibility import node_matches, placement_key

LABELS = {"pool": "a100", "zone": "z1", "nvidia.com/gpu.memory": "81920"}


def affinity(*terms: dict[str, Any]) -> dict[str, Any]:
    return {
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}
            }
        }
    }


def expr(key: str, operator: str, *values: str) -> dict[str, Any]:
    return {"matchExpressions": [{"key": key, "operator": operator, "values": list(values)}]}


@pytest.mark.parametrize(
    ("spec", "matches"),
    [
        ({}, True),
        ({"nodeSelector": {"pool": "a100"}}, True),
        ({"nodeSelector": {"pool": "l4"}}, False),
        ({"nodeSelector": {"pool": "a100", "missing": "x"}}, False),
        (affinity(expr("pool", "In", "l4", "a100")), True),
        (affinity(expr("pool", "NotIn", "a100")), False),
        (affinity(expr("missing", "NotIn", "x")), True),
        (affinity(expr("zone", "Exists")), True),
        (affinity(expr("zone", "DoesNotExist")), False),
        (affinity(expr("nvidia.com/gpu.memory", "Gt", "40959")), True),
        (affinity(expr("nvidia.com/gpu.memory", "Lt", "40959")), False),
        (affinity(expr("pool", "Gt", "1")), False),  # not a number: no match
        (affinity(expr("pool", "Near", "a100")), False),  # unknown operator: no match
        (affinity(expr("pool", "In", "l4"), expr("zone", "In", "z1")), True),  # terms are ORed
        (
            affinity(
                {
                    "matchExpressions": [
                        {"key": "pool", "operator": "In", "values": ["a100"]},
                        {"key": "zone", "operator": "In", "values": ["z2"]},
                    ]
                }
            ),
            False,
        ),  # expressions in a term are ANDed
        (affinity({}), False),  # an empty term matches nothing
        (
            affinity(
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node-1"]}]}
            ),
            True,
        ),
        (
            affinity(
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node-2"]}]}
            ),
            False,
        ),
        ({"nodeSelector": {"pool": "a100"}, **affinity(expr("zone", "In", "z2"))}, False),
    ],
)
def test_node_selector_and_required_affinity(spec: dict[str, Any], matches: bool) -> None:
    assert node_matches(spec, node_name="node-1", labels=LABELS) is matches


def test_templates_with_the_same_placement_share_a_key() -> None:
    assert placement_key({}) == placement_key({"containers": [{"name": "x"}]}) == ""
    one = placement_key({"nodeSelector": {"pool": "a100", "zone": "z1"}})
    assert one == placement_key({"nodeSelector": {"zone": "z1", "pool": "a100"}})
    assert one != placement_key({"nodeSelector": {"pool": "l4"}})
    assert placement_key(affinity(expr("pool", "In", "a100"))) != ""
