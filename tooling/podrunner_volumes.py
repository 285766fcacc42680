"""A pod's volumes as directories on this host, as the kubelet makes them.

`volume_files` (pure) says what files a volume holds: a configMap's or secret's keys (or the
`items` chosen), a downwardAPI's fields, a projected volume's sources (a serviceAccountToken from
the TokenRequest API, configMaps, secrets, downwardAPI). `write_atomically` puts them in place the
way the kubelet's atomic writer does: the files in a fresh `..<time>` directory, `..data` a
symlink to it swapped in one rename, and each visible name a symlink through `..data`, so a reader
never sees half an update and a watcher of the path sees the symlinks change (the webhook reloads
its profiles so). `Volumes` keeps a pod's volumes in sync with their objects, polled, as the
kubelet does. emptyDir is a plain directory (medium and sizeLimit are not enforced); readOnly
mounts are not enforced either: processes run as this user.
"""

from __future__ import annotations

import base64
import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tooling.podrunner_env import JsonDict, Lookup, SpecError, field_value

DEFAULT_MODE = 0o644  # the API's default for configMap, secret, projected and downwardAPI
Files = dict[str, tuple[bytes, int]]  # relative path -> (content, mode)


@dataclass(frozen=True)
class TokenRequest:
    """What a projected serviceAccountToken asks for, for the pod it is bound to."""

    namespace: str
    service_account: str
    pod_name: str
    pod_uid: str
    audience: str  # "" for the API server's own
    expiration_seconds: int


# A TokenRequest in, the token out.
TokenSource = Callable[[TokenRequest], str]


def decode_data(
    obj: Mapping[str, Any], *, base64_key: str, text_key: str | None
) -> dict[str, bytes]:
    """An object's data as bytes: `text_key` (a ConfigMap's data) as UTF-8, `base64_key` (a
    Secret's data, a ConfigMap's binaryData) decoded."""
    out = {k: v.encode() for k, v in (obj.get(text_key) or {}).items()} if text_key else {}
    out.update({k: base64.b64decode(v) for k, v in (obj.get(base64_key) or {}).items()})
    return out


def volume_files(
    pod: JsonDict, volume: JsonDict, *, lookup: Lookup, tokens: TokenSource, where: str
) -> Files | None:
    """The files of `volume`; None for an emptyDir (a directory the pod writes to itself)."""
    namespace = pod["metadata"]["namespace"]
    if "emptyDir" in volume:
        return None
    if "configMap" in volume:
        src = volume["configMap"]
        return _keyed(src, lookup.config_map(namespace, src["name"]), default_mode=src.get(
            "defaultMode", DEFAULT_MODE), what=f"configMap {namespace}/{src['name']}",
            where=f"{where}.configMap")  # fmt: skip
    if "secret" in volume:
        src = volume["secret"]
        return _keyed(src, lookup.secret(namespace, src["secretName"]), default_mode=src.get(
            "defaultMode", DEFAULT_MODE), what=f"secret {namespace}/{src['secretName']}",
            where=f"{where}.secret")  # fmt: skip
    if "downwardAPI" in volume:
        src = volume["downwardAPI"]
        mode = src.get("defaultMode", DEFAULT_MODE)
        return _downward(pod, src, default_mode=mode, where=f"{where}.downwardAPI")
    if "projected" in volume:
        return _projected(pod, volume["projected"], lookup=lookup, tokens=tokens, where=where)
    kinds = sorted(k for k in volume if k != "name")
    raise SpecError(where, f"volume type {', '.join(kinds)} is not one podrunner mounts")


def _keyed(
    src: JsonDict,
    data: Mapping[str, bytes] | None,
    *,
    default_mode: int,
    what: str,
    where: str,
) -> Files:
    """A configMap's or secret's files: every key, or the `items` asked for."""
    if data is None:
        if src.get("optional"):
            return {}
        raise SpecError(where, f"{what} does not exist")
    items = src.get("items")
    if items is None:
        return {key: (value, default_mode) for key, value in data.items()}
    files: Files = {}
    for i, item in enumerate(items):
        if item["key"] not in data:
            if src.get("optional"):
                continue
            raise SpecError(f"{where}.items[{i}]", f"{what} has no key {item['key']!r}")
        files[item["path"]] = (data[item["key"]], item.get("mode", default_mode))
    return files


def _downward(pod: JsonDict, src: JsonDict, *, default_mode: int, where: str) -> Files:
    files: Files = {}
    for i, item in enumerate(src.get("items") or []):
        here = f"{where}.items[{i}]"
        if "fieldRef" not in item:
            raise SpecError(here, "only fieldRef items are resolved by podrunner")
        value = field_value(pod, item["fieldRef"]["fieldPath"], where=f"{here}.fieldRef")
        files[item["path"]] = (value.encode(), item.get("mode", default_mode))
    return files


def _projected(
    pod: JsonDict, src: JsonDict, *, lookup: Lookup, tokens: TokenSource, where: str
) -> Files:
    meta, spec = pod["metadata"], pod.get("spec") or {}
    mode = src.get("defaultMode", DEFAULT_MODE)
    files: Files = {}
    for i, source in enumerate(src.get("sources") or []):
        here = f"{where}.projected.sources[{i}]"
        if "serviceAccountToken" in source:
            token = source["serviceAccountToken"]
            request = TokenRequest(
                namespace=meta["namespace"],
                service_account=spec.get("serviceAccountName") or "default",
                pod_name=meta["name"],
                pod_uid=meta["uid"],
                audience=token.get("audience", ""),
                expiration_seconds=int(token.get("expirationSeconds", 3600)),
            )
            files[token["path"]] = (tokens(request).encode(), mode)
        elif "configMap" in source:
            sub = {"defaultMode": mode, **source["configMap"]}
            volume = {"configMap": sub}
            files.update(volume_files(pod, volume, lookup=lookup, tokens=tokens, where=here) or {})
        elif "secret" in source:
            sub = source["secret"]
            volume = {"secret": {"defaultMode": mode, **sub, "secretName": sub["name"]}}
            files.update(volume_files(pod, volume, lookup=lookup, tokens=tokens, where=here) or {})
        elif "downwardAPI" in source:
            files.update(_downward(pod, source["downwardAPI"], default_mode=mode, where=here))
        else:
            raise SpecError(here, f"{', '.join(sorted(source))}: not a source podrunner mounts")
    return files


def write_atomically(directory: Path, files: Files) -> None:
    """Make `directory` hold exactly `files`, switched in one rename (the kubelet's layout)."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime())
    fresh = Path(tempfile.mkdtemp(prefix=stamp, dir=directory))
    for relative, (content, mode) in files.items():
        path = fresh / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        path.chmod(mode)
    fresh.chmod(0o755)
    data = directory / "..data"
    old = data.resolve() if data.is_symlink() else None
    staged = directory / "..data_tmp"
    with contextlib.suppress(FileNotFoundError):
        staged.unlink()
    staged.symlink_to(fresh.name)
    staged.replace(data)
    visible = {relative.split("/", 1)[0] for relative in files}
    for name in visible:
        link = directory / name
        if not link.is_symlink():
            link.symlink_to(f"..data/{name}")
    for entry in directory.iterdir():
        if entry.is_symlink() and not entry.name.startswith("..") and entry.name not in visible:
            entry.unlink()
    if old is not None and old != fresh:
        shutil.rmtree(old, ignore_errors=True)


class Volumes:
    """The volumes of one pod under `root`/<volume name>, written and then kept in sync.

    `sync()` re-reads every object-backed volume and rewrites one whose files changed; a
    projected token is requested again once 80% of its lifetime (at most a day) has passed, the
    kubelet's rule, and served from a cache until then.
    """

    def __init__(self, pod: JsonDict, root: Path, *, lookup: Lookup, tokens: TokenSource) -> None:
        self.pod, self.root = pod, root
        self.lookup, self.tokens = lookup, tokens
        self._written: dict[str, Files] = {}
        self._tokens: dict[TokenRequest, tuple[str, float]] = {}  # -> (token, issued, monotonic)

    def path(self, name: str) -> Path:
        return self.root / name

    def sync(self) -> None:
        """Every volume in place and up to date; SpecError for the first that cannot be (the
        kubelet retries such a pod: so do callers)."""
        for i, volume in enumerate(self.pod["spec"].get("volumes") or []):
            name = volume["name"]
            files = volume_files(
                self.pod, volume, lookup=self.lookup, tokens=self._token, where=f"spec.volumes[{i}]"
            )
            if files is None:
                self.path(name).mkdir(parents=True, exist_ok=True)
            elif self._written.get(name) != files:
                write_atomically(self.path(name), files)
                self._written[name] = files

    def _token(self, request: TokenRequest) -> str:
        cached = self._tokens.get(request)
        lifetime = min(request.expiration_seconds, 24 * 3600)
        if cached is not None and time.monotonic() - cached[1] < 0.8 * lifetime:
            return cached[0]
        token = self.tokens(request)
        self._tokens[request] = (token, time.monotonic())
        return token
