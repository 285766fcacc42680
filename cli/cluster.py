"""The cluster as the CLI talks to it: which one (kubeconfig, context, namespace, server, timeouts)
and what a failed read means for a person.

Every read the CLI makes goes through `Cluster.list` or `Cluster.get`, which turn the API's errors
into a `CliError` whose message says what is missing and how to get it: the server that could not
be reached and how long was waited, the CRD that is not installed and how to install it, the verb
and resource RBAC refused and the rule that would allow it.

Loads no client library until a command connects (`headroom status` imports this module).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from headroom import names

if TYPE_CHECKING:  # the client library loads when a command runs, so `--help` stays fast
    from kubeapi.client import ApiError, JsonDict, KubeApi

DEFAULT_TIMEOUT_SECONDS = 10.0
INSTALL_CRDS = (
    "install them with `kubectl apply -f manifests/crds/` from the Headroom repository "
    "(or all of Headroom: `kubectl apply -k manifests/`)"
)


class CliError(Exception):
    """A problem a person can fix; the message says which."""


@dataclass(frozen=True)
class Resource:
    """What an API path reads, in RBAC's terms."""

    group: str  # "" for the core group
    plural: str
    namespace: str  # "" for cluster-scoped, or every namespace
    name: str  # "" for a collection

    @property
    def verb(self) -> str:
        return "get" if self.name else "list"

    @property
    def kind(self) -> str:
        """`gpunodes.headroom.dev`, `pods`: the name kubectl and RBAC messages use."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def where(self) -> str:
        return f"in namespace {self.namespace}" if self.namespace else "cluster-wide"

    def rbac_rule(self) -> str:
        role = f"a Role in namespace {self.namespace}" if self.namespace else "a ClusterRole"
        return (
            f'{{apiGroups: ["{self.group}"], resources: ["{self.plural}"], verbs: ["{self.verb}"]}}'
            f" in {role} bound to you"
        )


def resource_of(path: str) -> Resource:
    """`/api/v1/namespaces/ml/pods/x` -> (core, pods, ml, x); `/apis/G/V/plural` -> (G, plural)."""
    parts = [p for p in path.split("?", 1)[0].split("/") if p]
    group, rest = ("", parts[2:]) if parts[:1] == ["api"] else (parts[1], parts[3:])
    namespace = ""
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    return Resource(group, rest[0] if rest else "", namespace, rest[1] if len(rest) > 1 else "")


@dataclass(frozen=True)
class Cluster:
    """One cluster's API with what messages need to name: its server and the context used."""

    kube: KubeApi
    server_url: str = ""
    context: str = ""
    namespace: str = "default"  # the context's, for commands that take `-n`
    connect_timeout_seconds: float | None = None  # None: not known here (no message names it)
    timeout_seconds: float | None = None

    def list(self, path: str, *, optional: bool = False) -> list[JsonDict]:
        """One collection's items. With `optional`, a collection the cluster does not serve
        (404) or the user may not read (403) is empty: DRA, which clusters may not have."""
        from kubeapi.client import ApiError  # noqa: PLC0415

        try:
            items: list[JsonDict] = self.kube.request("GET", path).get("items") or []
        except ApiError as exc:
            if optional and exc.status in (403, 404):
                return []
            raise self.explain(exc, path) from exc
        return items

    def get(self, path: str) -> JsonDict:
        """One object; NotFound passes through (the caller knows what was looked for)."""
        from kubeapi.client import ApiError, NotFound  # noqa: PLC0415

        try:
            return self.kube.request("GET", path)
        except NotFound:
            raise
        except ApiError as exc:
            raise self.explain(exc, path) from exc

    def explain(self, exc: ApiError, path: str) -> CliError:
        """The failure of reading `path`, in words that say what to do."""
        resource = resource_of(path)
        if exc.status == 0:  # Unreachable: no answer at all
            return CliError(self._unreachable(exc))
        if exc.status == 404 and not resource.name and resource.group == names.API_GROUP:
            return CliError(
                f"Headroom's CRDs are not installed in this cluster: the CRD {resource.kind} is "
                f"not served; {INSTALL_CRDS}"
            )
        if exc.status == 401:
            return CliError(
                f"the cluster{self._at()} did not accept the credentials"
                f"{self._of_context()} ({exc}): log in again, or fix the user in the kubeconfig"
            )
        if exc.status == 403:
            return CliError(
                f"no permission to read {resource.kind} ({resource.verb} {resource.where}): "
                f"{exc}; the RBAC needed: {resource.rbac_rule()}"
            )
        return CliError(f"{resource.verb} {resource.kind} {resource.where}: {exc}")

    def _unreachable(self, exc: ApiError) -> str:
        said = []
        if self.connect_timeout_seconds is not None and self.timeout_seconds is not None:
            said.append(
                f"waited {self.connect_timeout_seconds:g}s to connect and "
                f"{self.timeout_seconds:g}s for an answer"
            )
        if self.context:
            said.append(f"context {self.context}")
        detail = f" ({'; '.join(said)})" if said else ""
        return f"cannot reach the cluster{self._at()}{detail}: {exc}"

    def _at(self) -> str:
        return f" at {self.server_url}" if self.server_url else ""

    def _of_context(self) -> str:
        return f" of context {self.context}" if self.context else ""


def server_of(api_client: Any) -> str:
    """The API server's URL an ApiClient talks to ("" when it has none, as a test's stand-in)."""
    return str(getattr(getattr(api_client, "configuration", None), "host", "") or "")


def connect(
    kubeconfig: str | None,
    *,
    context: str | None = None,
    namespace: str | None = None,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
) -> Cluster:
    """The cluster kubectl would talk to with these flags; `namespace` None is the context's."""
    from kubernetes.config.config_exception import ConfigException  # noqa: PLC0415

    from kubeapi.client import (  # noqa: PLC0415
        CONNECT_TIMEOUT_SECONDS,
        Kube,
        kubeconfig_context,
        load_api_client,
    )

    try:
        api_client = load_api_client(kubeconfig, context=context)
        selected = kubeconfig_context(kubeconfig, context=context)
    except ConfigException as exc:
        raise CliError(str(exc)) from exc
    connect_seconds = min(CONNECT_TIMEOUT_SECONDS, timeout_seconds)
    kube = Kube(
        api_client, timeout_seconds=timeout_seconds, connect_timeout_seconds=connect_seconds
    )
    return Cluster(
        kube,
        server_url=server_of(api_client),
        context=selected.name,
        namespace=namespace or selected.namespace or "default",
        connect_timeout_seconds=connect_seconds,
        timeout_seconds=timeout_seconds,
    )
