"""Backoff: exponential growth, a cap, full jitter, and a reset."""

import random

from headroom.backoff import Backoff
from kubeapi.cache import object_key


def test_delays_grow_exponentially_up_to_the_cap_with_full_jitter() -> None:
    backoff = Backoff(initial_seconds=1.0, max_seconds=8.0, rng=random.Random(7))
    ceilings = [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    delays = [backoff.next_delay() for _ in ceilings]
    assert all(0.0 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    many = [Backoff(initial_seconds=1.0, max_seconds=8.0, rng=random.Random(s)) for s in range(200)]
    first = [b.next_delay() for b in many]
    assert max(first) <= 1.0
    assert min(first) < 0.1 and max(first) > 0.9  # jitter spreads over the whole range


def test_reset_starts_again_from_the_initial_delay() -> None:
    backoff = Backoff(initial_seconds=1.0, max_seconds=100.0, rng=random.Random(1))
    for _ in range(6):
        backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() <= 1.0


def test_object_keys() -> None:
    assert object_key({"metadata": {"name": "n", "namespace": "ns"}}) == "ns/n"
    assert object_key({"metadata": {"name": "node-1"}}) == "node-1"
