"""`FakeKube`: the one stand-in for the Kubernetes API that unit tests pass where a component takes
a `KubeApi`. It records every call and answers from a route table keyed by (method, path): a
canned JSON reply, an ApiError to raise (NotFound, Conflict, ...), or a handler that sees the call.
A call with no route is answered NotFound, as the API server answers a path it does not serve."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubeapi.client import ApiError, EventStream, JsonDict, NotFound


@dataclass(frozen=True)
class Call:
    method: str  # WATCH for a watch
    path: str
    query: Mapping[str, Any] | None = None
    body: Any = None
    content_type: str = "application/json"
    timeout_seconds: float | None = None


Handler = Callable[[Call], JsonDict]
Reply = JsonDict | ApiError | Handler


@dataclass
class FakeStream:
    """A watch that yields canned events, then ends as a server-side timeout would."""

    events: Sequence[JsonDict]
    closed: bool = False

    def __iter__(self) -> Iterator[JsonDict]:
        for event in self.events:
            if self.closed:
                return
            yield event
        self.closed = True

    def close(self) -> None:
        self.closed = True


@dataclass
class FakeKube:
    routes: dict[tuple[str, str], Reply] = field(default_factory=dict)
    watches: dict[str, Sequence[JsonDict] | ApiError] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)

    def on(self, method: str, path: str, reply: Reply) -> FakeKube:
        """Answer `method path` with `reply` from now on; returns self, so routes chain."""
        self.routes[(method, path)] = reply
        return self

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout_seconds: float | None = None,
    ) -> JsonDict:
        call = Call(method, path, query, copy.deepcopy(body), content_type, timeout_seconds)
        self.calls.append(call)
        reply = self.routes.get((method, path))
        if reply is None:
            raise NotFound(f"{method} {path}: no such route in the fake")
        if isinstance(reply, ApiError):
            raise reply
        if callable(reply):
            return reply(call)
        return copy.deepcopy(reply)

    def watch(
        self, path: str, *, query: Mapping[str, Any], read_timeout_seconds: float
    ) -> EventStream:
        self.calls.append(Call("WATCH", path, query))
        events = self.watches.get(path, ())
        if isinstance(events, ApiError):
            raise events
        return FakeStream(list(events))

    def requests(self, method: str | None = None) -> list[str]:
        """`METHOD path` of each call so far (only `method`'s, when given), in order."""
        return [f"{c.method} {c.path}" for c in self.calls if method in (None, c.method)]
