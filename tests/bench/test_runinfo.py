"""bench/runinfo.py: the table every bench prints, and how a baseline's spread reads."""

from __future__ import annotations

import pytest

from bench.runinfo import Spread, alternate, table


def test_table_pads_each_column_to_its_widest_cell() -> None:
    assert table(["a", "bbb"], [["xxxx", "y"], ["1", "2"]]).splitlines() == [
        "| a    | bbb |",
        "|------|-----|",
        "| xxxx | y   |",
        "| 1    | 2   |",
    ]


def test_a_row_with_a_cell_missing_is_refused() -> None:
    with pytest.raises(ValueError, match="every row needs 2 cells"):
        table(["a", "b"], [["only one"]])


def test_describe_names_what_the_legs_were() -> None:
    spread = Spread.of([1.0, 2.0, 3.0])
    assert spread.describe(" GiB", 1, over="seeds") == "2.0 GiB (1.0-3.0 over 3 seeds, spread 100%)"
    assert Spread.of([5.0]).describe(over="updates") == "5.00 (1 update)"


def test_alternate_reverses_the_order_every_other_round() -> None:
    order: list[str] = []
    alternate({"a": lambda: order.append("a"), "b": lambda: order.append("b")}, rounds=3)
    assert order == ["a", "b", "b", "a", "a", "b"]
