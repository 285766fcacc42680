"""Label selectors matched in the extender: the string a /scale reports, and LabelSelector objects,
as Kubernetes reads them."""

from __future__ import annotations

import pytest

from extender.scaler.selector import (
    DOES_NOT_EXIST,
    EXISTS,
    IN,
    NOT_IN,
    Requirement,
    SelectorError,
    from_label_selector,
    matches,
    parse_selector,
)

POD = {"app": "llm", "tier": "serve", "gpu": "a100", "shard": "3"}


@pytest.mark.parametrize(
    ("selector", "selected"),
    [
        ("app=llm", True),
        ("app==llm", True),
        ("app=other", False),
        ("app=llm,tier=serve", True),
        ("app=llm,tier=batch", False),
        ("app!=other", True),
        ("app!=llm", False),
        ("missing!=x", True),  # as in Kubernetes: no label is "not x"
        ("tier in (serve,batch)", True),
        ("tier in (batch, cache)", False),
        ("tier notin (batch,cache)", True),
        ("missing notin (a)", True),
        ("tier notin (serve)", False),
        ("gpu", True),
        ("spot", False),
        ("!spot", True),
        ("!gpu", False),
        ("shard>2", True),
        ("shard<2", False),
        ("app=llm, tier in (serve,batch), gpu, !spot", True),
        ("app.kubernetes.io/name=x", False),
        ("", True),  # selects everything
    ],
)
def test_the_string_form(selector: str, selected: bool) -> None:
    assert matches(parse_selector(selector), POD) is selected


def test_the_string_form_parses_into_requirements() -> None:
    assert parse_selector("app=llm,tier in (a, b),gpu,!spot,x!=y") == (
        Requirement("app", IN, frozenset({"llm"})),
        Requirement("tier", IN, frozenset({"a", "b"})),
        Requirement("gpu", EXISTS),
        Requirement("spot", DOES_NOT_EXIST),
        Requirement("x", NOT_IN, frozenset({"y"})),
    )


@pytest.mark.parametrize("selector", ["app=llm,", "tier in (a,b", "app=l m", "=x", "a,,b"])
def test_a_selector_it_cannot_read_is_an_error(selector: str) -> None:
    with pytest.raises(SelectorError):
        parse_selector(selector)


def test_match_labels_and_match_expressions_all_apply() -> None:
    selector = {
        "matchLabels": {"app": "llm"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["serve", "batch"]},
            {"key": "gpu", "operator": "Exists"},
            {"key": "spot", "operator": "DoesNotExist"},
            {"key": "zone", "operator": "NotIn", "values": ["eu"]},
        ],
    }
    assert matches(from_label_selector(selector), POD)
    assert not matches(from_label_selector(selector), {**POD, "spot": "true"})
    assert not matches(from_label_selector(selector), {**POD, "tier": "cache"})
    assert not matches(from_label_selector({"matchLabels": {"app": "x"}}), POD)
    assert matches(from_label_selector({}), POD)
    with pytest.raises(SelectorError, match="Gt"):
        from_label_selector({"matchExpressions": [{"key": "a", "operator": "Gt"}]})
