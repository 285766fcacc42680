"""The vector selectors of a PromQL expression (`metric{matchers}`), found by a small scanner.

Prometheus 2.42 has no endpoint that returns a query's syntax tree, so the monitoring tests find
the selectors themselves: they skip string literals, durations and number literals, the label
lists of `by`, `without`, `on`, `ignoring`, `group_left` and `group_right`, the bracketed ranges
and subqueries, function and aggregation names (an identifier followed by `(`, or an aggregation
followed by its `by`/`without` clause) and the binary operator keywords; what is left is a metric
name, with its `{...}` matchers when it has them.
Tested in test_promql.py, including against Prometheus itself in the e2e test (every selector it
returns must be one the series API accepts).
"""

from __future__ import annotations

import re

# Keywords that take a parenthesised list of label names after them.
LABEL_LIST_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
# Words that are operators or modifiers, never metric names.
OPERATOR_WORDS = frozenset({"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"})
# Aggregations may put their `by`/`without` clause before the parenthesis: `sum by (le) (x)`.
AGGREGATIONS = frozenset(
    {
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
        "limit_ratio",
    }
)
IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
NUMBER = re.compile(r"(0[xX][0-9a-fA-F]+|[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?)[A-Za-z0-9_]*")
QUOTES = "\"'`"


class PromqlError(ValueError):
    """The text is not an expression this scanner can read (unbalanced brackets or quotes)."""


def vector_selectors(expr: str) -> list[str]:
    """Each vector selector in `expr`, in order of appearance, as written (name and matchers)."""
    found: list[str] = []
    i, n = 0, len(expr)
    while i < n:
        char = expr[i]
        if char in QUOTES:
            i = _skip_string(expr, i)
        elif char == "[":
            i = _skip_balanced(expr, i, "[", "]")
        elif char == "{":  # a selector with no name: {__name__="x"}; not used by Headroom's
            end = _skip_balanced(expr, i, "{", "}")
            found.append(expr[i:end])
            i = end
        elif char.isdigit() or (char == "." and i + 1 < n and expr[i + 1].isdigit()):
            match = NUMBER.match(expr, i)
            i = match.end() if match else i + 1
        elif IDENTIFIER.match(expr, i):
            i = _identifier(expr, i, found)
        else:
            i += 1
    return found


def _identifier(expr: str, start: int, found: list[str]) -> int:
    match = IDENTIFIER.match(expr, start)
    assert match is not None
    word, end = match.group(), match.end()
    after = _skip_space(expr, end)
    next_char = expr[after] if after < len(expr) else ""
    if word.lower() in LABEL_LIST_KEYWORDS:
        return _skip_balanced(expr, after, "(", ")") if next_char == "(" else end
    if word.lower() in OPERATOR_WORDS or next_char == "(":
        return end  # an operator, or a function or aggregation called here
    clause = IDENTIFIER.match(expr, after)
    if word.lower() in AGGREGATIONS and clause and clause.group().lower() in ("by", "without"):
        return end  # `sum by (...) (...)`: the clause comes next
    if next_char == "{":
        close = _skip_balanced(expr, after, "{", "}")
        found.append(word + expr[after:close])
        return close
    found.append(word)
    return end


def _skip_space(expr: str, i: int) -> int:
    while i < len(expr) and expr[i].isspace():
        i += 1
    return i


def _skip_string(expr: str, start: int) -> int:
    quote, i = expr[start], start + 1
    while i < len(expr):
        if expr[i] == "\\" and quote != "`":
            i += 2
            continue
        if expr[i] == quote:
            return i + 1
        i += 1
    raise PromqlError(f"unclosed string starting at {start}: {expr[start : start + 30]!r}")


def _skip_balanced(expr: str, start: int, opening: str, closing: str) -> int:
    """The index just past the bracket that closes the one at `start` (strings skipped)."""
    if start >= len(expr) or expr[start] != opening:
        raise PromqlError(f"expected {opening!r} at {start} in {expr!r}")
    depth, i = 0, start
    while i < len(expr):
        char = expr[i]
        if char in QUOTES:
            i = _skip_string(expr, i)
            continue
        if char == opening:
            depth += 1
        elif char == closing:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise PromqlError(f"unclosed {opening!r} at {start} in {expr!r}")


def metric_name(selector: str) -> str:
    """The metric name of a selector as `vector_selectors` returns it ('' for `{...}` only)."""
    match = IDENTIFIER.match(selector)
    return match.group() if match else ""
