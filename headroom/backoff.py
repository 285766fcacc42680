"""How long to wait after the n-th failure in a row: the retry delay every loop that talks to a
peer (the watch caches, the requeuer, the node agent's publisher) shares."""

from __future__ import annotations

import random


class Backoff:
    """Exponential backoff, full jitter: the n-th delay is uniform in [0, min(cap, base*2^n)]."""

    def __init__(
        self,
        *,
        initial_seconds: float = 0.5,
        max_seconds: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        self.initial_seconds = initial_seconds
        self.max_seconds = max_seconds
        self.failures = 0
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography

    def next_delay(self) -> float:
        ceiling = min(self.max_seconds, self.initial_seconds * 2 ** min(self.failures, 30))
        self.failures += 1
        return self._rng.uniform(0, ceiling)

    def reset(self) -> None:
        self.failures = 0
