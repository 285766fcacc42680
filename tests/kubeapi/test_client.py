"""The typed errors of the Kubernetes edge, and the watch cache reading them (through FakeKube)."""

from __future__ import annotations

import socket
import threading

import pytest
from kubernetes import client

from kubeapi.cache import WatchCache, _Expired
from kubeapi.client import (
    ApiError,
    Conflict,
    Gone,
    JsonDict,
    Kube,
    NotFound,
    Unreachable,
    _error_from,
    api_error,
)
from tests.kubeapi.fake import Call, FakeKube


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (404, NotFound),
        (409, Conflict),
        (410, Gone),
        (0, Unreachable),
        (403, ApiError),
        (500, ApiError),
    ],
)
def test_each_status_has_its_error_class_and_keeps_its_status(
    status: int, kind: type[ApiError]
) -> None:
    error = api_error(status, "words", reason="Why")
    assert type(error) is kind and isinstance(error, ApiError)
    assert (error.status, error.reason) == (status, "Why")
    assert str(error) == ("words" if status == 0 else f"HTTP {status}: words")


def test_an_error_body_gives_its_message_and_reason() -> None:
    error = _error_from(409, b'{"message": "already exists", "reason": "AlreadyExists"}')
    assert isinstance(error, Conflict)
    assert (str(error), error.reason) == ("HTTP 409: already exists", "AlreadyExists")
    assert str(_error_from(502, b"<html>bad gateway")) == "HTTP 502: <html>bad gateway"


def test_a_server_that_cannot_be_reached_is_unreachable() -> None:
    configuration = client.Configuration(host="http://127.0.0.1:9")  # discard: nothing listens
    kube = Kube(client.ApiClient(configuration), timeout_seconds=2)
    with pytest.raises(Unreachable, match="cannot reach the API server") as info:
        kube.request("GET", "/api")
    assert info.value.status == 0


def test_an_answer_whose_body_stalls_is_unreachable_not_a_hang() -> None:
    # The headers come, the body never does: the read timeout ends the wait as Unreachable.
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]

        def stall() -> None:
            connection, _ = server.accept()
            with connection:
                connection.recv(65536)
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{")
                connection.recv(1)  # until the client gives up and closes

        thread = threading.Thread(target=stall, daemon=True)
        thread.start()
        configuration = client.Configuration(host=f"http://127.0.0.1:{port}")
        kube = Kube(client.ApiClient(configuration), timeout_seconds=0.3)
        with pytest.raises(Unreachable, match="answer broke off"):
            kube.request("GET", "/api")
        thread.join(10)


def test_a_list_whose_continue_token_expired_starts_over() -> None:
    pages: dict[str | None, JsonDict] = {
        None: {"items": [{"metadata": {"name": "a"}}], "metadata": {"continue": "t1"}},
        "t1": {"items": [{"metadata": {"name": "b"}}], "metadata": {"resourceVersion": "7"}},
    }
    expire_next_token = [True]  # the first continue token has expired; the second has not

    def page(call: Call) -> JsonDict:
        token = (call.query or {}).get("continue")
        if token and expire_next_token:
            expire_next_token.clear()
            raise Gone("the continue token expired")
        return pages[token]

    kube = FakeKube().on("GET", "/api/v1/pods", page)
    cache = WatchCache(kube, "/api/v1/pods", page_size=1)
    cache._relist()
    assert sorted(cache.snapshot()) == ["a", "b"] and cache.resource_version == "7"
    assert [(c.query or {}).get("continue") for c in kube.calls] == [None, "t1", None, "t1"]


def test_a_watch_from_a_version_the_server_no_longer_has_lists_again() -> None:
    gone = FakeKube()
    gone.watches["/api/v1/pods"] = Gone("too old a resource version")
    with pytest.raises(_Expired):
        WatchCache(gone, "/api/v1/pods")._watch()
    in_stream = FakeKube()
    in_stream.watches["/api/v1/pods"] = [{"type": "ERROR", "object": {"code": 410}}]
    with pytest.raises(_Expired):
        WatchCache(in_stream, "/api/v1/pods")._watch()
    other = FakeKube()
    other.watches["/api/v1/pods"] = [{"type": "ERROR", "object": {"code": 500, "message": "etcd"}}]
    with pytest.raises(ApiError, match="HTTP 500: etcd"):
        WatchCache(other, "/api/v1/pods")._watch()
