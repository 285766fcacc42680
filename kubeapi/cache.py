"""A list+watch cache of one kind of Kubernetes object, kept current by a background thread.

The loop client-go's reflector made standard: list (in pages), watch from the list's
resourceVersion with bookmarks, resume from the last version seen after a dropped connection, and
list again when the server says that version is gone (410). Failures wait with exponential backoff
and full jitter. Readers get consistent snapshots from any thread; an optional callback sees every
change, including the ones a relist discovers, so nothing is silently lost.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from headroom.backoff import Backoff
from kubeapi.client import EventStream, Gone, JsonDict, KubeApi, NotFound, api_error

log = logging.getLogger(__name__)

ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"


@dataclass(frozen=True)
class WatchEvent:
    type: str  # ADDED, MODIFIED or DELETED
    object: JsonDict
    old: JsonDict | None = None  # the previous version, for MODIFIED and DELETED


class _Expired(Exception):
    """The server no longer has the resourceVersion we asked to watch from (HTTP 410)."""


def object_key(obj: Mapping[str, Any]) -> str:
    """`namespace/name` for namespaced objects, `name` for cluster-scoped ones."""
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace")
    return f"{namespace}/{meta.get('name')}" if namespace else str(meta.get("name"))


@dataclass
class CacheStats:
    lists: int = 0
    expired: int = 0  # 410 Gone answers that forced a relist
    watch_restarts: int = 0
    bookmarks: int = 0
    errors: int = 0
    last_sync_monotonic: float = field(default=0.0)


class WatchCache:
    """Mirror of the objects under one collection path, e.g. `/api/v1/pods`."""

    def __init__(
        self,
        kube: KubeApi,
        path: str,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        on_event: Callable[[WatchEvent], None] | None = None,
        watch_timeout_seconds: float = 300.0,
        page_size: int = 500,
        backoff: Backoff | None = None,
        transform: Callable[[JsonDict], JsonDict] | None = None,
        optional: bool = False,
    ) -> None:
        self.kube = kube
        self.path = path
        # An API the cluster may not serve (resource.k8s.io on an older cluster): while it
        # answers 404 the cache counts as synced and empty, and keeps asking with backoff.
        self.optional = optional
        self.absent = False
        self.selectors = {"labelSelector": label_selector, "fieldSelector": field_selector}
        self.on_event = on_event
        self.watch_timeout_seconds = watch_timeout_seconds
        self.page_size = page_size
        self.backoff = backoff or Backoff()
        # Applied to every object before it is stored or passed on: keeps only what a reader
        # needs, so a cache of a large cluster's pods stays small.
        self.transform = transform or (lambda obj: obj)
        self.stats = CacheStats()
        self.resource_version = ""
        self._store: dict[str, JsonDict] = {}
        self._lock = threading.Lock()
        self._synced = threading.Event()
        self._stop = threading.Event()
        self._wake = threading.Event()  # cuts a backoff wait short: stop(), retry_now()
        self._thread: threading.Thread | None = None
        self._stream: EventStream | None = None

    # -- reading ---------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, JsonDict]:
        """A consistent copy of the store (objects are shared: treat them as read-only)."""
        with self._lock:
            return dict(self._store)

    def get(self, key: str) -> JsonDict | None:
        with self._lock:
            return self._store.get(key)

    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    def wait_synced(self, timeout_seconds: float) -> bool:
        return self._synced.wait(timeout_seconds)

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"watch {self.path}", daemon=True)
        self._thread.start()

    def stop(self, timeout_seconds: float = 10.0) -> None:
        """Stop the loop and wait for the thread (closing the open watch wakes it at once)."""
        self._stop.set()
        self._wake.set()
        stream = self._stream
        if stream is not None:
            stream.close()
        if self._thread is not None:
            self._thread.join(timeout_seconds)

    def retry_now(self) -> None:
        """End a backoff wait now: the caller knows the API server answers again (after an
        outage the next retry could otherwise be up to `backoff`'s cap away)."""
        self._wake.set()

    def _run(self) -> None:
        need_list = True
        while not self._stop.is_set():
            try:
                if need_list:
                    try:
                        self._relist()
                    except NotFound:
                        if not self.optional:
                            raise
                        self._absent()
                        raise
                    self.absent = False
                    need_list = False
                self._watch()
                self.backoff.reset()
            except _Expired:
                self.stats.expired += 1
                log.info(
                    "watch %s: resourceVersion %s expired; listing again",
                    self.path,
                    self.resource_version,
                )
                need_list = True
            except Exception as exc:  # the loop must outlive any failure; it logs and backs off
                self.stats.errors += 1
                delay = self.backoff.next_delay()
                log.warning("watch %s failed (%s); retrying in %.1fs", self.path, exc, delay)
                self._wake.wait(delay)  # a nudge from before the failure costs one quick retry
                self._wake.clear()

    def _absent(self) -> None:
        if not self.absent:
            log.info("watch %s: not served by this cluster; treated as empty", self.path)
        self.absent = True
        self._replace({}, "")

    # -- list ------------------------------------------------------------------------------------
    def _relist(self) -> None:
        items: dict[str, JsonDict] = {}
        token: str | None = None
        while True:
            query = {**self.selectors, "limit": self.page_size, "continue": token}
            try:
                page = self.kube.request("GET", self.path, query=query)
            except Gone:  # the continue token expired mid-list: start over
                items, token = {}, None
                continue
            for obj in page.get("items") or []:
                items[object_key(obj)] = self.transform(obj)
            meta = page.get("metadata") or {}
            token = meta.get("continue") or None
            if token is None:
                break
        self._replace(items, str(meta.get("resourceVersion", "")))

    def _replace(self, items: dict[str, JsonDict], resource_version: str) -> None:
        with self._lock:
            old = self._store
            self._store = items
            self.resource_version = resource_version
        self.stats.lists += 1
        self.stats.last_sync_monotonic = time.monotonic()
        self._synced.set()
        for key, obj in old.items():
            if key not in items:
                self._emit(WatchEvent(DELETED, obj, obj))
        for key, obj in items.items():
            before = old.get(key)
            if before is None:
                self._emit(WatchEvent(ADDED, obj))
            elif _version(before) != _version(obj):
                self._emit(WatchEvent(MODIFIED, obj, before))

    # -- watch -----------------------------------------------------------------------------------
    def _watch(self) -> None:
        # Servers end a watch at timeoutSeconds; jitter spreads reconnects of many clients.
        server_timeout = int(self.watch_timeout_seconds * random.uniform(1.0, 1.5))  # noqa: S311
        query = {
            **self.selectors,
            "watch": True,
            "resourceVersion": self.resource_version,
            "allowWatchBookmarks": True,
            "timeoutSeconds": server_timeout,
        }
        self.stats.watch_restarts += 1
        try:
            self._stream = self.kube.watch(
                self.path, query=query, read_timeout_seconds=server_timeout + 30
            )
            if self._stop.is_set():  # stop() ran before the stream existed to be closed
                return
            for event in self._stream:
                self._apply(event)
                if self._stop.is_set():
                    return
        except Gone as exc:
            raise _Expired from exc
        finally:
            if self._stream is not None:
                self._stream.close()
            self._stream = None

    def _apply(self, event: Mapping[str, Any]) -> None:
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            code = int(obj.get("code") or 0)
            if code == 410:
                raise _Expired
            raise api_error(code, str(obj.get("message", "watch error")))
        version = _version(obj)
        if kind == "BOOKMARK":
            self.stats.bookmarks += 1
            self.resource_version = version or self.resource_version
            return
        obj = self.transform(obj)
        key = object_key(obj)
        with self._lock:
            before = self._store.get(key)
            if kind == DELETED:
                self._store.pop(key, None)
            else:
                self._store[key] = obj
            self.resource_version = version or self.resource_version
        self.stats.last_sync_monotonic = time.monotonic()
        if kind in (ADDED, MODIFIED, DELETED):
            self._emit(WatchEvent(MODIFIED if kind == ADDED and before else str(kind), obj, before))

    def _emit(self, event: WatchEvent) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(event)
        except Exception:  # a broken handler must not stop the cache
            log.exception("watch %s: event handler failed", self.path)


def _version(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion", ""))
