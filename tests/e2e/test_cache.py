"""The watch cache against a real kube-apiserver: list, watch, bookmarks, an API server restart,
and a forced 410 Gone, never losing an object."""

from __future__ import annotations

import base64
import json
import threading
import urllib.request
from collections.abc import Iterator

import pytest

from headroom.backoff import Backoff
from kubeapi.cache import DELETED, WatchCache, WatchEvent
from kubeapi.client import Kube
from tests.e2e.waiting import eventually
from tooling.localcluster import LocalCluster


def configmap(kube: Kube, namespace: str, name: str, value: str = "1") -> None:
    kube.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/configmaps",
        body={"metadata": {"name": name}, "data": {"v": value}},
    )


def server_state(kube: Kube, path: str) -> dict[str, str]:
    items = kube.request("GET", path)["items"]
    return {i["metadata"]["name"]: i["metadata"]["resourceVersion"] for i in items}


def cache_state(cache: WatchCache) -> dict[str, str]:
    return {k.split("/")[-1]: v["metadata"]["resourceVersion"] for k, v in cache.snapshot().items()}


class Recorder:
    def __init__(self) -> None:
        self.events: list[WatchEvent] = []
        self.lock = threading.Lock()

    def __call__(self, event: WatchEvent) -> None:
        with self.lock:
            self.events.append(event)

    def seen(self, kind: str, name: str) -> bool:
        with self.lock:
            return any(e.type == kind and e.object["metadata"]["name"] == name for e in self.events)


@pytest.fixture
def started() -> Iterator[list[WatchCache]]:
    caches: list[WatchCache] = []
    yield caches
    for cache in caches:
        cache.stop()


def test_lists_then_follows_changes_with_events(
    kube: Kube, namespace: str, started: list[WatchCache]
) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    configmap(kube, namespace, "before")
    recorder = Recorder()
    cache = WatchCache(kube, path, on_event=recorder, page_size=1)  # several pages
    configmap(kube, namespace, "before-2")
    started.append(cache)
    cache.start()
    assert cache.wait_synced(30)
    assert {"before", "before-2"} <= set(cache_state(cache))
    configmap(kube, namespace, "after")
    kube.request("PUT", f"{path}/before", body={"metadata": {"name": "before"}, "data": {"v": "2"}})
    kube.request("DELETE", f"{path}/before-2")
    eventually(lambda: cache_state(cache) == server_state(kube, path), what="cache == server")
    assert cache.get(f"{namespace}/before")["data"] == {"v": "2"}  # type: ignore[index]
    assert recorder.seen("ADDED", "after")
    assert recorder.seen("MODIFIED", "before")
    assert recorder.seen(DELETED, "before-2")


def test_bookmarks_advance_the_resource_version(
    kube: Kube, namespace: str, started: list[WatchCache]
) -> None:
    # The API server's watch cache (on for Secrets) sends a bookmark shortly before a watch times
    # out, carrying the newest resourceVersion of the resource, here one from another namespace.
    cache = WatchCache(kube, f"/api/v1/namespaces/{namespace}/secrets", watch_timeout_seconds=4)
    started.append(cache)
    cache.start()
    assert cache.wait_synced(30)
    eventually(lambda: cache._stream is not None, what="an open watch")
    elsewhere = kube.request(
        "POST",
        "/api/v1/namespaces/default/secrets",
        body={"metadata": {"generateName": "bookmark-"}},
    )
    newest = int(elsewhere["metadata"]["resourceVersion"])
    eventually(
        lambda: cache.stats.bookmarks > 0 and int(cache.resource_version) >= newest,
        what="a bookmark carrying the newer resourceVersion",
    )
    assert not any(k.startswith("default/") for k in cache.snapshot())
    assert cache.stats.errors == 0


def through_an_outage(cluster: LocalCluster, cache: WatchCache, started: list[WatchCache]) -> None:
    """Start the cache, then stop the API server until the cache has failed once, and restart
    it: the cache is then in its retry wait."""
    started.append(cache)
    cache.start()
    assert cache.wait_synced(30)
    cluster.stop_apiserver()
    eventually(lambda: cache.stats.errors > 0, what="the cache noticing the outage")
    cluster.start_apiserver()


def test_survives_an_api_server_restart(
    cluster: LocalCluster, kube: Kube, namespace: str, started: list[WatchCache]
) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    configmap(kube, namespace, "a")
    through_an_outage(
        cluster,
        WatchCache(kube, path, backoff=Backoff(initial_seconds=0.2, max_seconds=2)),
        started,
    )
    cache = started[-1]
    configmap(kube, namespace, "b")
    eventually(lambda: cache_state(cache) == server_state(kube, path), what="cache == server")
    assert set(cache_state(cache)) >= {"a", "b"}


class LongBackoff(Backoff):
    """Every retry waits a minute, the worst a capped backoff reaches after a long outage."""

    def next_delay(self) -> float:
        return 60.0


def test_retry_now_ends_a_long_backoff_once_the_server_is_back(
    cluster: LocalCluster, kube: Kube, namespace: str, started: list[WatchCache]
) -> None:
    cache = WatchCache(kube, f"/api/v1/namespaces/{namespace}/configmaps", backoff=LongBackoff())
    through_an_outage(cluster, cache, started)  # now in a minute-long wait
    configmap(kube, namespace, "after")
    cache.retry_now()
    eventually(
        lambda: "after" in cache_state(cache),
        timeout_seconds=10,
        what="the cache caught up at once, not a minute later",
    )


class GatedBackoff(Backoff):
    """Holds the cache in its retry wait until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__(initial_seconds=0.0, max_seconds=0.0)
        self.waiting = threading.Event()
        self.gate = threading.Event()

    def next_delay(self) -> float:
        self.waiting.set()
        self.gate.wait(120)
        return 0.0


def etcd_call(cluster: LocalCluster, method: str, body: dict[str, object]) -> dict[str, object]:
    request = urllib.request.Request(
        f"{cluster.etcd_url}/v3/kv/{method}", data=json.dumps(body).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        decoded: dict[str, object] = json.loads(response.read())
        return decoded


def compact_etcd(cluster: LocalCluster) -> None:
    header = etcd_call(cluster, "range", {"key": base64.b64encode(b"/").decode()})["header"]
    revision = header["revision"]  # type: ignore[index]
    etcd_call(cluster, "compaction", {"revision": revision, "physical": True})


def test_a_forced_410_relists_without_losing_an_object(
    cluster: LocalCluster, kube: Kube, namespace: str, started: list[WatchCache]
) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    for name in ("keep", "change", "remove"):
        configmap(kube, namespace, name)
    recorder, backoff = Recorder(), GatedBackoff()
    cache = WatchCache(kube, path, on_event=recorder, backoff=backoff)
    started.append(cache)
    cache.start()
    assert cache.wait_synced(30)
    # Break the watch and hold the cache in its retry wait, with its resourceVersion unchanged.
    cluster.stop_apiserver()
    assert backoff.waiting.wait(30)
    cluster.start_apiserver()
    # Changes the cache cannot see, then a compaction that makes its resourceVersion too old.
    kube.request("PUT", f"{path}/change", body={"metadata": {"name": "change"}, "data": {"v": "2"}})
    kube.request("DELETE", f"{path}/remove")
    configmap(kube, namespace, "new")
    compact_etcd(cluster)
    backoff.gate.set()
    eventually(lambda: cache.stats.expired > 0, what="a 410 Gone")
    eventually(lambda: cache_state(cache) == server_state(kube, path), what="cache == server")
    # kube-root-ca.crt is the ConfigMap kube-controller-manager puts in every namespace.
    assert set(cache_state(cache)) - {"kube-root-ca.crt"} == {"keep", "change", "new"}
    assert recorder.seen("MODIFIED", "change")
    assert recorder.seen(DELETED, "remove")
    assert recorder.seen("ADDED", "new")
    assert cache.stats.lists == 2


def test_stop_ends_a_quiet_watch_promptly(kube: Kube, namespace: str) -> None:
    cache = WatchCache(kube, f"/api/v1/namespaces/{namespace}/configmaps")
    cache.start()
    assert cache.wait_synced(30)
    eventually(lambda: cache._stream is not None, what="an open watch")
    cache.stop(timeout_seconds=5)
    assert cache._thread is not None
    assert not cache._thread.is_alive()
