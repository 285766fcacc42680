"""What a container of a pod runs, resolved as a kubelet resolves it: the environment (`env`,
`envFrom`, with `$(VAR)` references), the argv (`command`/`args` over the image's ENTRYPOINT and
CMD), and the podrunner's fill-ins on both (mount paths to the volumes' directories on this host,
`--in-cluster` to a kubeconfig). Pure: the objects a container refers to come in through a
`Lookup`; a reference that cannot be resolved raises `SpecError` naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

JsonDict = dict[str, Any]
# The names the ServiceAccount admission plugin and every in-cluster client agree on.
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
IN_CLUSTER_FLAG = "--in-cluster"


class SpecError(ValueError):
    """A pod field the podrunner cannot run as it is; the message starts with the field.
    `reason` is the waiting reason a kubelet would give the container for it."""

    def __init__(
        self, where: str, message: str, *, reason: str = "CreateContainerConfigError"
    ) -> None:
        self.where, self.reason = where, reason
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Lookup:
    """The objects a container refers to: `config_map(namespace, name)` and `secret(namespace,
    name)` give their data, decoded from base64 where the API encodes it (None when the object
    does not exist)."""

    config_map: Callable[[str, str], Mapping[str, bytes] | None]
    secret: Callable[[str, str], Mapping[str, bytes] | None]


@dataclass(frozen=True)
class Image:
    """An image the podrunner can run, and where its programs are on this host. `env` is the
    image's own ENV; `tag` the only tag it has here. `config_file_access`: its program takes the
    API server's address from the file its `--config` names (kube-scheduler's
    clientConnection.kubeconfig) rather than from a flag or KUBECONFIG."""

    repository: str
    tag: str
    bin_dirs: tuple[Path, ...]
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    config_file_access: bool = False


def find_image(reference: str, images: Sequence[Image], *, where: str) -> Image:
    """The known image `reference` (repository[:tag]) names; SpecError when it is another image
    or another tag (running another version than the pod asks for would be a lie)."""
    repository, tag = split_image(reference)
    for image in images:
        if image.repository == repository:
            if tag and tag != image.tag:
                message = f"image {reference}: only tag {image.tag!r} is on this host"
                raise SpecError(where, message, reason="ErrImageNeverPull")
            return image
    known = ", ".join(f"{i.repository}:{i.tag}" for i in images)
    raise SpecError(
        where, f"image {reference}: podrunner runs only {known}", reason="ErrImageNeverPull"
    )


def split_image(reference: str) -> tuple[str, str]:
    """(repository, tag) of an image reference; a digest is dropped, the tag "" when unset."""
    name = reference.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1 :]
    return name, ""


def expand(text: str, variables: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: a defined VAR is replaced, an undefined one left as
    written; `$$` is a literal `$` (so `$$(VAR)` stays `$(VAR)`)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "$" or i + 1 == len(text):
            out.append(char)
            i += 1
            continue
        following = text[i + 1]
        if following == "$":
            out.append("$")
            i += 2
        elif following == "(":
            close = text.find(")", i + 2)
            if close == -1:
                out.append(text[i:])
                break
            name = text[i + 2 : close]
            out.append(variables.get(name, text[i : close + 1]))
            i = close + 1
        else:
            out.append(char)
            i += 1
    return "".join(out)


def field_value(pod: JsonDict, path: str, *, where: str) -> str:
    """A downward API `fieldRef.fieldPath` of `pod` (its status as this node will write it)."""
    meta, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": status.get("podIP", ""),
        "status.hostIP": status.get("hostIP", ""),
        "status.podIPs": ",".join(p["ip"] for p in status.get("podIPs") or []),
        "status.hostIPs": ",".join(p["ip"] for p in status.get("hostIPs") or []),
    }
    if path in simple:
        return str(simple[path])
    keyed = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if keyed:
        return str((meta.get(keyed.group(1)) or {}).get(keyed.group(2), ""))
    raise SpecError(where, f"fieldPath {path!r} is not one podrunner resolves")


def container_env(
    pod: JsonDict, container: JsonDict, *, lookup: Lookup, where: str
) -> dict[str, str]:
    """The variables the pod spec gives `container`, in the kubelet's order: `envFrom` sources,
    then `env` (later wins), each value expanded against those defined before it."""
    namespace = pod["metadata"]["namespace"]
    env: dict[str, str] = {}
    for i, source in enumerate(container.get("envFrom") or []):
        env.update(_env_from(source, namespace, lookup=lookup, where=f"{where}.envFrom[{i}]"))
    for i, var in enumerate(container.get("env") or []):
        here = f"{where}.env[{i}]"
        if "valueFrom" in var:
            value = _value_from(pod, var["valueFrom"], lookup=lookup, where=f"{here}.valueFrom")
            if value is not None:
                env[var["name"]] = value
        else:
            env[var["name"]] = expand(var.get("value", ""), env)
    return env


def _env_from(source: JsonDict, namespace: str, *, lookup: Lookup, where: str) -> dict[str, str]:
    prefix = source.get("prefix", "")
    for kind, fetch in (("configMapRef", lookup.config_map), ("secretRef", lookup.secret)):
        if kind in source:
            ref = source[kind]
            data = fetch(namespace, ref["name"])
            if data is None:
                if ref.get("optional"):
                    return {}
                raise SpecError(f"{where}.{kind}", f"{namespace}/{ref['name']} does not exist")
            return {f"{prefix}{k}": _text(v) for k, v in data.items()}
    raise SpecError(where, "expected configMapRef or secretRef")


def _value_from(pod: JsonDict, source: JsonDict, *, lookup: Lookup, where: str) -> str | None:
    if "fieldRef" in source:
        return field_value(pod, source["fieldRef"]["fieldPath"], where=f"{where}.fieldRef")
    namespace = pod["metadata"]["namespace"]
    for kind, fetch in (("configMapKeyRef", lookup.config_map), ("secretKeyRef", lookup.secret)):
        if kind in source:
            ref = source[kind]
            data = fetch(namespace, ref["name"])
            if data is not None and ref["key"] in data:
                return _text(data[ref["key"]])
            if ref.get("optional"):
                return None
            missing = "does not exist" if data is None else f"has no key {ref['key']!r}"
            raise SpecError(f"{where}.{kind}", f"{namespace}/{ref['name']} {missing}")
    raise SpecError(where, f"{', '.join(sorted(source))}: not a source podrunner resolves")


def _text(value: bytes) -> str:
    return value.decode("utf-8", "replace")


class MountMap:
    """The fill-in for mount paths: each of a container's mount paths stands for a directory on
    this host, and `rewrite` puts that directory in place of the path wherever a string names it
    (whole path components only: /etc/headroom does not match /etc/headroomx)."""

    def __init__(self, mounts: Mapping[str, Path]) -> None:
        self.mounts = {_strip(path): host for path, host in mounts.items()}
        ordered = sorted(self.mounts, key=len, reverse=True)  # the deepest mount wins
        alternatives = "|".join(re.escape(p) for p in ordered)
        self._pattern = re.compile(rf"(?<![\w.-])({alternatives})(?![\w.-])") if ordered else None

    def rewrite(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(lambda m: str(self.mounts[m.group(1)]), text)

    def host_path(self, mount_path: str) -> Path | None:
        return self.mounts.get(_strip(mount_path))


def _strip(path: str) -> str:
    return path.rstrip("/") or "/"


def argv(
    container: JsonDict,
    image: Image,
    *,
    env: Mapping[str, str],
    mounts: MountMap,
    kubeconfig: Path | None,
) -> list[str]:
    """The process to start: `command` (else the image's ENTRYPOINT) and `args` (else, with no
    `command` either, the image's CMD), `$(VAR)`s expanded, mount paths rewritten, and
    `--in-cluster` replaced by `--kubeconfig=FILE` when the container has the account's token."""
    command = container.get("command")
    args = container.get("args")
    if command is None:
        command = list(image.entrypoint)
        args = list(image.cmd) if args is None else args
    words = [*command, *(args or [])]
    if not words:
        raise SpecError("command", f"no command and image {image.repository} has no ENTRYPOINT")
    out = [mounts.rewrite(expand(word, env)) for word in words]
    if kubeconfig is not None:
        out = [f"--kubeconfig={kubeconfig}" if w == IN_CLUSTER_FLAG else w for w in out]
    return out


def config_flag(words: Sequence[str]) -> tuple[int, str] | None:
    """Where `--config=FILE` (or `--config FILE`) is in `words`: (index of FILE's word, FILE)."""
    for i, word in enumerate(words):
        if word.startswith("--config="):
            return i, word.removeprefix("--config=")
        if word == "--config" and i + 1 < len(words):
            return i + 1, words[i + 1]
    return None


def with_client_kubeconfig(config: JsonDict, kubeconfig: Path) -> JsonDict:
    """The fill-in for a component configured by file (kube-scheduler): its
    clientConnection.kubeconfig set to `kubeconfig`, unless the file names one already (then the
    pod chose its access itself)."""
    connection = dict(config.get("clientConnection") or {})
    connection["kubeconfig"] = connection.get("kubeconfig") or str(kubeconfig)
    return {**config, "clientConnection": connection}
