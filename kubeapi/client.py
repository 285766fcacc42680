"""The edge to the Kubernetes API: configuration, JSON requests and watch streams, as plain dicts.

Built on the official client's `ApiClient` (its configuration, authentication, TLS and connection
pool) but without its generated models: Headroom handles objects as JSON, the form admission
reviews, watch events and the pure functions use, and that keeps every component's view identical.
Every call has a timeout, so a dead apiserver is an error, never a hang.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol
from urllib.parse import quote

import urllib3
import yaml
from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException
from kubernetes.watch.watch import iter_resp_lines

JsonDict = dict[str, Any]
DEFAULT_TIMEOUT_SECONDS = 10.0
CONNECT_TIMEOUT_SECONDS = 5.0


class ApiError(Exception):
    """An API call that failed: `status` is the HTTP status (0 when the server was not reached)."""

    def __init__(self, status: int, message: str, *, reason: str = "") -> None:
        self.status = status
        self.reason = reason
        super().__init__(f"HTTP {status}: {message}" if status else message)


class _Typed(ApiError):
    """An ApiError whose class names its status, so callers write `except NotFound:`."""

    STATUS: ClassVar[int]

    def __init__(self, message: str, *, reason: str = "") -> None:
        super().__init__(self.STATUS, message, reason=reason)


class NotFound(_Typed):
    STATUS = 404


class Conflict(_Typed):
    STATUS = 409


class Gone(_Typed):
    """410: a resourceVersion or continue token the server no longer has."""

    STATUS = 410


class Unreachable(_Typed):
    """The server was not reached, or a stream from it broke: no HTTP status at all."""

    STATUS = 0


_TYPED: dict[int, type[_Typed]] = {
    cls.STATUS: cls for cls in (NotFound, Conflict, Gone, Unreachable)
}


def api_error(status: int, message: str, *, reason: str = "") -> ApiError:
    """The ApiError for `status`: one of the typed subclasses where there is one."""
    typed = _TYPED.get(status)
    return typed(message, reason=reason) if typed else ApiError(status, message, reason=reason)


class EventStream(Protocol):
    """An open watch: its decoded events, and `close()` (from any thread) to end it."""

    def __iter__(self) -> Iterator[JsonDict]: ...

    def close(self) -> None: ...


class KubeApi(Protocol):
    """What components need of the API: `Kube`, or a test's fake."""

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout_seconds: float | None = None,
    ) -> JsonDict: ...

    def watch(
        self, path: str, *, query: Mapping[str, Any], read_timeout_seconds: float
    ) -> EventStream: ...


def load_api_client(
    kubeconfig: str | None = None, *, context: str | None = None, in_cluster: bool = False
) -> client.ApiClient:
    """An ApiClient configured as kubectl would be: the given file, else the files $KUBECONFIG
    lists (merged as kubectl merges them: the first to set a name wins), else ~/.kube/config,
    else the in-cluster service account. `context` picks a context of the kubeconfig instead of
    its current one. `in_cluster` goes straight to the service account, whatever files the
    environment names."""
    found = None if in_cluster else kubeconfig_files(kubeconfig)
    if found:
        if context is not None:
            _require_context(found, context)
        configuration = client.Configuration()
        config.load_kube_config(
            config_file=found,
            context=context or _current_context(found),
            client_configuration=configuration,
        )
        return _api_client(configuration)
    if context is not None:
        raise ConfigException(f"--context {context!r}: no kubeconfig to find it in")
    try:
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)
    except ConfigException as exc:
        raise ConfigException(
            "no cluster configured: pass --kubeconfig, set KUBECONFIG, create ~/.kube/config, "
            f"or run inside a cluster ({exc})"
        ) from exc
    return _api_client(configuration)


# Connections kept per API server. The client's default (5 per CPU: 10 on two cores) is taken up
# by a component's long-lived watches (the extender holds eight), after which every other request
# opened a new TLS connection and dropped it ("Connection pool is full").
CONNECTION_POOL_SIZE = 64


def _api_client(configuration: client.Configuration) -> client.ApiClient:
    configuration.connection_pool_maxsize = CONNECTION_POOL_SIZE
    return client.ApiClient(configuration)


def kubeconfig_files(kubeconfig: str | None = None) -> str | None:
    """The kubeconfig files kubectl would read, joined with the path separator (the form the
    client's loader merges), or None when there are none and only in-cluster is left. An explicit
    file that does not exist is an error naming it."""
    if kubeconfig:
        if not Path(kubeconfig).exists():
            raise ConfigException(f"--kubeconfig: no such file {kubeconfig!r}")
        return kubeconfig
    existing = [p for p in _kubeconfig_candidates() if Path(p).exists()]
    return os.pathsep.join(existing) if existing else None


@dataclass(frozen=True)
class KubeContext:
    """The context a kubeconfig selects: its name and its default namespace ("" when unset)."""

    name: str
    namespace: str


def kubeconfig_context(kubeconfig: str | None = None, *, context: str | None = None) -> KubeContext:
    """The context `load_api_client` with the same arguments uses, for its default namespace (as
    kubectl's `-n` defaults to it). In a cluster without a kubeconfig: the pod's namespace."""
    found = kubeconfig_files(kubeconfig)
    if not found:
        if context is not None:
            raise ConfigException(f"--context {context!r}: no kubeconfig to find it in")
        try:
            namespace = SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
        except OSError:
            namespace = ""
        return KubeContext("", namespace)
    contexts, _ = _contexts(found)
    name = context if context is not None else _current_context(found) or ""
    if context is not None:
        _require_context(found, context)
    entry = next((c for c in contexts if c.get("name") == name), None) or {}
    namespace = (entry.get("context") or {}).get("namespace") or ""
    return KubeContext(name, str(namespace))


def _kubeconfig_candidates() -> list[str]:
    env = os.environ.get("KUBECONFIG", "")
    paths = [p for p in env.split(os.pathsep) if p]
    return paths or [str(Path.home() / ".kube" / "config")]


SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def _contexts(files: str) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    try:
        contexts, current = config.list_kube_config_contexts(config_file=files)
    except ConfigException:
        return [], None  # a kubeconfig without contexts: the loader itself says what is wrong
    return list(contexts or []), current


def _current_context(files: str) -> str | None:
    """kubectl's current context: the first file that sets one wins (the client's own merge lets
    the last win)."""
    for path in files.split(os.pathsep):
        try:
            loaded = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError):
            continue  # the loader reports a file it cannot read
        current = loaded.get("current-context") if isinstance(loaded, dict) else None
        if current:
            return str(current)
    return None


def _require_context(files: str, context: str) -> None:
    names = [str(c.get("name")) for c in _contexts(files)[0]]
    if context not in names:
        raise ConfigException(
            f"--context: no context {context!r} in {files} (it has: {', '.join(names) or 'none'})"
        )


def resource_path(
    *,
    group: str,
    version: str,
    plural: str,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    """The REST path of a collection or object: `/api/v1/...` for the core group."""
    parts = ["/api/v1"] if group == "" else ["/apis", group, version]
    if namespace:
        parts += ["namespaces", quote(namespace, safe="")]
    parts.append(plural)
    if name:
        parts.append(quote(name, safe=""))
    if subresource:
        parts.append(subresource)
    return "/".join(parts)


class Kube:
    """JSON requests against one cluster."""

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        connect_timeout_seconds: float = CONNECT_TIMEOUT_SECONDS,
    ) -> None:
        self.api_client = api_client
        self.timeout_seconds = timeout_seconds
        self.connect_timeout_seconds = connect_timeout_seconds

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
        """Send one request and return the decoded JSON body; raise ApiError (a typed subclass
        where there is one: NotFound, Conflict, Gone, Unreachable) on failure."""
        timeout = timeout_seconds or self.timeout_seconds
        response = self._send(
            method,
            path,
            query=query,
            body=body,
            content_type=content_type,
            timeout=(self.connect_timeout_seconds, timeout),
        )
        try:
            data = response.data
        except (urllib3.exceptions.HTTPError, OSError) as exc:  # the body stalled or broke off
            raise Unreachable(f"{method} {path}: the API server's answer broke off: {exc}") from exc
        finally:
            response.release_conn()
        if not 200 <= response.status < 300:
            raise _error_from(response.status, data)
        decoded: JsonDict = json.loads(data) if data else {}
        return decoded

    def watch(
        self, path: str, *, query: Mapping[str, Any], read_timeout_seconds: float
    ) -> WatchStream:
        """Open a streaming GET (a watch). A non-2xx answer raises ApiError with its status."""
        response = self._send(
            "GET",
            path,
            query=query,
            body=None,
            content_type="application/json",
            timeout=(self.connect_timeout_seconds, read_timeout_seconds),
        )
        if not 200 <= response.status < 300:
            try:
                raise _error_from(response.status, response.data)
            finally:
                response.release_conn()
        return WatchStream(response)

    def _send(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None,
        body: Any,
        content_type: str,
        timeout: tuple[float, float],
    ) -> urllib3.BaseHTTPResponse:
        params: Sequence[tuple[str, Any]] = [
            (k, _query_value(v)) for k, v in (query or {}).items() if v is not None
        ]
        headers = {"Accept": "application/json", "Content-Type": content_type}
        if isinstance(body, bytes | str):
            payload: Any = body
        else:
            payload = None if body is None else json.dumps(body)
        method_, url, headers, _, _ = self.api_client.param_serialize(
            method=method,
            resource_path=path,
            query_params=list(params),
            header_params=headers,
            auth_settings=["BearerToken"],
        )
        pool = self.api_client.rest_client.pool_manager
        try:
            response: urllib3.BaseHTTPResponse = pool.request(
                method_,
                url,
                body=payload,
                headers=headers,
                timeout=urllib3.Timeout(connect=timeout[0], read=timeout[1]),
                preload_content=False,
                retries=False,
            )
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise Unreachable(f"{method} {path}: cannot reach the API server: {exc}") from exc
        return response


def _query_value(value: Any) -> Any:
    return ("true" if value else "false") if isinstance(value, bool) else value


def _error_from(status: int, data: bytes | None) -> ApiError:
    message, reason = (data or b"").decode("utf-8", "replace")[:500], ""
    try:
        decoded = json.loads(data or b"")
        if isinstance(decoded, dict):
            message = str(decoded.get("message", message))
            reason = str(decoded.get("reason", ""))
    except ValueError:
        pass
    return api_error(status, message, reason=reason)


class WatchStream:
    """The events of one open watch. `close()` may be called from another thread to end it."""

    def __init__(self, response: urllib3.BaseHTTPResponse) -> None:
        self._response = response
        self._closed = False

    def __iter__(self) -> Iterator[JsonDict]:
        """Yield decoded events; a broken or silent (past the read timeout) stream raises
        Unreachable, unless it was closed on purpose."""
        try:
            for line in iter_resp_lines(self._response):
                yield json.loads(line)
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            if not self._closed:
                raise Unreachable(f"watch stream broke: {exc}") from exc
        finally:
            self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # shutdown() wakes a read blocked in another thread; close() alone would not. urllib3
        # refuses when the server already ended the stream (the connection went back to the pool)
        # or no socket was opened: then nothing is waiting.
        with contextlib.suppress(RuntimeError, ValueError, OSError):
            self._response.shutdown()
        self._response.close()
