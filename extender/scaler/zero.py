"""Zero to N: an AIScaler with `minReplicas: 0` idles its target at zero replicas.

At zero there is no pod to read, so such an AIScaler needs a metric that does not come from the
pods: a `prometheus` query of a router's or gateway's queue. Its total is the activation signal:

- at zero, the target stays at zero while every Prometheus total is at or below
  `activationThreshold`, and goes to (at least) one replica when one rises above it;
- above zero, it goes back to zero only once the totals have stayed at or below the threshold
  for `idleSeconds` (then HPA's scale-down stabilisation and rate policies apply as usual).

    minReplicas: 0
    scaleToZero: {activationThreshold: 0, idleSeconds: 300}

Pure: the observations and the time are arguments.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from headroom.fields import FieldError, read_int, read_mapping, read_number

KEYS = ("activationThreshold", "idleSeconds")
DEFAULT_IDLE_SECONDS = 300
MAX_IDLE_SECONDS = 86400


@dataclass(frozen=True)
class ScaleToZero:
    activation_threshold: float = 0.0  # a total above this wakes the target
    idle_seconds: int = DEFAULT_IDLE_SECONDS  # at or below it this long before going to zero


def parse_scale_to_zero(value: object, *, error: type[FieldError]) -> ScaleToZero:
    """`spec.scaleToZero`, validated; `error` is raised naming the field."""
    if value is None:
        return ScaleToZero()
    raw: Mapping[str, Any] = read_mapping(value, "spec.scaleToZero", error=error)
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise error(
            f"spec.scaleToZero.{unknown[0]}", f"unknown field (expected: {', '.join(KEYS)})"
        )
    field = "spec.scaleToZero.activationThreshold"
    threshold = read_number(
        raw.get("activationThreshold", 0.0),
        field,
        above=-math.inf,
        expected="a number >= 0",
        error=error,
    )
    if threshold < 0:
        raise error(field, f"expected a number >= 0 (got {threshold!r})")
    return ScaleToZero(
        activation_threshold=threshold,
        idle_seconds=read_int(
            raw.get("idleSeconds", DEFAULT_IDLE_SECONDS),
            "spec.scaleToZero.idleSeconds",
            minimum=0,
            maximum=MAX_IDLE_SECONDS,
            expected=f"an integer from 0 to {MAX_IDLE_SECONDS}",
            error=error,
        ),
    )


def activation(totals: Iterable[float | None], policy: ScaleToZero) -> tuple[bool, str]:
    """Whether the Prometheus totals wake the target, and the words for it."""
    read = [t for t in totals if t is not None and math.isfinite(t)]
    peak = max(read, default=0.0)
    above = peak > policy.activation_threshold
    relation = "above" if above else "at or below"
    return above, f"queue {peak:g} {relation} activationThreshold {policy.activation_threshold:g}"
