"""Malformed and random request bodies for the fuzz tests: seeded, so a failure replays."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

from tests.webhook.helpers import corpus, review_body

SEEDS = list(corpus().values())


def random_json(rng: random.Random, depth: int = 0) -> Any:
    choice = rng.randrange(10 if depth < 4 else 6)
    if choice == 0:
        return None
    if choice == 1:
        return rng.choice([True, False])
    if choice == 2:
        return rng.choice([0, -1, 2**70, 3.5, 1e308])
    if choice in (3, 4, 5):
        return rng.choice(
            [
                "",
                "true",
                "CREATE",
                "Pod",
                "20Gi",
                "lots",
                "héadroom",
                "\u0000",
                "a" * 300,
                "headroom.dev/managed",
            ]
        )
    if choice in (6, 7):
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = [
        "uid",
        "kind",
        "object",
        "metadata",
        "spec",
        "labels",
        "annotations",
        "containers",
        "operation",
        "request",
        "resources",
        "limits",
        "nvidia.com/gpu",
        "x",
    ]
    return {rng.choice(keys): random_json(rng, depth + 1) for _ in range(rng.randrange(4))}


def mutate_at_random(rng: random.Random, value: Any) -> Any:
    """`value` with one subtree replaced by random JSON (or deleted)."""
    if not isinstance(value, dict | list) or not value or rng.random() < 0.3:
        return random_json(rng)
    if isinstance(value, dict):
        key = rng.choice(list(value))
        out = dict(value)
        if rng.random() < 0.2:
            del out[key]
        else:
            out[key] = mutate_at_random(rng, value[key])
        return out
    index = rng.randrange(len(value))
    return [*value[:index], mutate_at_random(rng, value[index]), *value[index + 1 :]]


def bodies(count: int, *, seed: int = 20240601) -> Iterator[bytes]:
    rng = random.Random(seed)
    for i in range(count):
        kind = i % 5
        valid = review_body(rng.choice(SEEDS), uid=f"fuzz-{i}")
        if kind == 0:
            yield bytes(rng.randrange(256) for _ in range(rng.randrange(64)))
        elif kind == 1:
            text = json.dumps(valid).encode()
            yield text[: rng.randrange(len(text))]
        elif kind == 2:
            yield json.dumps(random_json(rng)).encode()
        elif kind == 3:  # a real review whose pod is broken somewhere
            valid["request"]["object"] = mutate_at_random(rng, valid["request"]["object"])
            yield json.dumps(valid).encode()
        else:  # a real review whose request (or envelope, now and then) is broken somewhere
            broken = mutate_at_random(rng, valid if rng.random() < 0.2 else valid["request"])
            if isinstance(broken, dict) and "request" not in broken:
                broken = {**valid, "request": {**broken, "uid": f"fuzz-{i}"}}
            yield json.dumps(broken).encode()


def uid_of(body: bytes) -> Any:
    """The request uid a 200 answer must carry, or None when the body has none."""
    try:
        document = json.loads(body)
        return document["request"]["uid"]
    except (ValueError, KeyError, TypeError):
        return None
