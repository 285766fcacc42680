"""The selector scanner the monitoring tests use on alert and dashboard expressions."""

from __future__ import annotations

import pytest

from tests.monitoring.promql import PromqlError, metric_name, vector_selectors


@pytest.mark.parametrize(
    ("expr", "selectors"),
    [
        ("up", ["up"]),
        ('up{job=~"headroom-.*"} == 0', ['up{job=~"headroom-.*"}']),
        (
            "histogram_quantile(0.99, sum by (le, verb) "
            '(rate(headroom_extender_verb_seconds_bucket{verb="filter"}[5m])))',
            ['headroom_extender_verb_seconds_bucket{verb="filter"}'],
        ),
        (
            "min by (node) (a_seconds - ignoring (node) group_left b_seconds) > 0",
            ["a_seconds", "b_seconds"],
        ),
        (
            "x / on (instance) group_left (node, gpu) y unless z offset 5m",
            ["x", "y", "z"],
        ),
        ("sum(x) without (pod) > bool 3", ["x"]),
        ("sum(rate(x[$__rate_interval])) BY (le)", ["x"]),
        ("max_over_time(g[6h:1m]) and on () vector(1)", ["g"]),
        ("1e3 * a + 0x1F - .5 * b", ["a", "b"]),
        ('label_replace(m, "dst", "$1 or y", "src", "(.*)")', ["m"]),
        ('k{a="}", b=~"{x}"} + l{c=\'"\'}', ['k{a="}", b=~"{x}"}', "l{c='\"'}"]),
        ('{__name__="only_matchers"}', ['{__name__="only_matchers"}']),
        ("absent(m) or sum(n) < 1", ["m", "n"]),
        ("rec:rule:rate5m{job='j'}", ["rec:rule:rate5m{job='j'}"]),
        ("nan != inf", []),
        ("time() - m @ start()", ["m"]),
    ],
)
def test_selectors_are_found_and_nothing_else(expr: str, selectors: list[str]) -> None:
    assert vector_selectors(expr) == selectors


def test_metric_names() -> None:
    assert metric_name('a_total{x="1"}') == "a_total"
    assert metric_name('{__name__="a"}') == ""


@pytest.mark.parametrize("expr", ['m{a="1"', "sum(m[5m)", 'm{a="1}'])
def test_unbalanced_text_is_an_error(expr: str) -> None:
    with pytest.raises(PromqlError):
        vector_selectors(expr)
