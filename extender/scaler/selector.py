"""Label selectors, matched here rather than by the API server: the scaler finds its target's pods
in the extender's pod cache instead of listing them every round.

Both forms Kubernetes uses: the string a `/scale` subresource reports as `status.selector`
(`app=llm,tier!=cache,env in (a,b),gpu,!spot`, as `labels.Parse` reads it) and a LabelSelector's
`matchLabels` and `matchExpressions`. Pure: no client library, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

IN, NOT_IN, EXISTS, DOES_NOT_EXIST, GT, LT = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")
_KEY = r"[A-Za-z0-9][A-Za-z0-9./_-]*"
_VALUE = r"[A-Za-z0-9._-]*"
_NOT_EXISTS = re.compile(rf"!\s*({_KEY})")
_SET = re.compile(rf"({_KEY})\s+(in|notin)\s*\(([^()]*)\)")
_COMPARE = re.compile(rf"({_KEY})\s*(==|=|!=|>|<)\s*({_VALUE})")
_EXISTS = re.compile(_KEY)
_OPERATORS = {"=": IN, "==": IN, "!=": NOT_IN, ">": GT, "<": LT, "in": IN, "notin": NOT_IN}


class SelectorError(ValueError):
    """A selector this module cannot read; the message quotes the offending part."""


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # In, NotIn, Exists, DoesNotExist, Gt, Lt
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        if self.operator == EXISTS:
            return value is not None
        if self.operator == DOES_NOT_EXIST:
            return value is None
        if self.operator == IN:
            return value is not None and value in self.values
        if self.operator == NOT_IN:  # as in Kubernetes: a pod without the label matches
            return value is None or value not in self.values
        return value is not None and _compares(value, self.operator, self.values)


def _compares(value: str, operator: str, bound: frozenset[str]) -> bool:
    try:
        number, limit = int(value), int(next(iter(bound)))
    except (ValueError, StopIteration):
        return False
    return number > limit if operator == GT else number < limit


def parse_selector(text: str) -> tuple[Requirement, ...]:
    """The requirements of a selector string; the empty string selects everything."""
    return tuple(_requirement(part) for part in _split(text) if part)


def _split(text: str) -> list[str]:
    """Split at the commas between requirements, not those inside `in (a,b)`."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    if depth or (len(parts) > 1 and not all(parts)):
        raise SelectorError(f"label selector {text!r}: unbalanced parentheses or an empty part")
    return parts


def _requirement(part: str) -> Requirement:
    if found := _NOT_EXISTS.fullmatch(part):
        return Requirement(found[1], DOES_NOT_EXIST)
    if found := _SET.fullmatch(part):
        values = frozenset(v.strip() for v in found[3].split(","))
        return Requirement(found[1], _OPERATORS[found[2]], values)
    if found := _COMPARE.fullmatch(part):
        return Requirement(found[1], _OPERATORS[found[2]], frozenset({found[3]}))
    if _EXISTS.fullmatch(part):
        return Requirement(part, EXISTS)
    raise SelectorError(f"label selector: cannot read {part!r}")


def from_label_selector(selector: Mapping[str, Any]) -> tuple[Requirement, ...]:
    """The requirements of a LabelSelector object (`matchLabels` and `matchExpressions`)."""
    found = [
        Requirement(str(k), IN, frozenset({str(v)}))
        for k, v in (selector.get("matchLabels") or {}).items()
    ]
    for expression in selector.get("matchExpressions") or []:
        operator = str(expression.get("operator", ""))
        if operator not in (IN, NOT_IN, EXISTS, DOES_NOT_EXIST):
            raise SelectorError(f"matchExpressions: unknown operator {operator!r}")
        found.append(
            Requirement(
                str(expression.get("key", "")),
                operator,
                frozenset(str(v) for v in expression.get("values") or []),
            )
        )
    return tuple(found)


def matches(requirements: Sequence[Requirement], labels: Mapping[str, str]) -> bool:
    """True when the labels meet every requirement (no requirements: always)."""
    return all(r.matches(labels) for r in requirements)
