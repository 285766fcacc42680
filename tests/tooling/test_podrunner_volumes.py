"""A pod's volumes on this host: what each kind holds, the kubelet's atomic layout, and the sync
that follows the objects (and renews tokens) as the kubelet's does."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import pytest

from tooling.podrunner_env import Lookup, SpecError
from tooling.podrunner_volumes import (
    TokenRequest,
    Volumes,
    decode_data,
    volume_files,
    write_atomically,
)

CA = b"-----BEGIN CERTIFICATE-----\n"


class Objects:
    """ConfigMaps and Secrets by (namespace, name), changeable mid-test."""

    def __init__(self) -> None:
        self.config_maps: dict[tuple[str, str], dict[str, bytes]] = {
            ("ns", "profiles"): {"profiles.yaml": b"a: 1\n"},
            ("ns", "kube-root-ca.crt"): {"ca.crt": CA},
        }
        self.secrets: dict[tuple[str, str], dict[str, bytes]] = {
            ("ns", "tls"): {"tls.crt": b"CRT", "tls.key": b"KEY"}
        }
        self.lookup = Lookup(
            config_map=lambda ns, n: self.config_maps.get((ns, n)),
            secret=lambda ns, n: self.secrets.get((ns, n)),
        )


class Tokens:
    def __init__(self) -> None:
        self.requests: list[TokenRequest] = []

    def __call__(self, request: TokenRequest) -> str:
        self.requests.append(request)
        return f"token-{len(self.requests)}"


def pod(*volumes: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "ns", "uid": "uid-1"},
        "spec": {"serviceAccountName": "web", "volumes": list(volumes)},
    }


# What the ServiceAccount admission plugin adds to a pod that automounts its token.
KUBE_API_ACCESS = {
    "name": "kube-api-access-x",
    "projected": {
        "defaultMode": 420,
        "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {
                "configMap": {
                    "name": "kube-root-ca.crt",
                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                }
            },
            {
                "downwardAPI": {
                    "items": [
                        {
                            "path": "namespace",
                            "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                        }
                    ]
                }
            },
        ],
    },
}


def files_of(volume: dict[str, Any], objects: Objects | None = None) -> dict[str, Any] | None:
    objects = objects or Objects()
    return volume_files(pod(volume), volume, lookup=objects.lookup, tokens=Tokens(), where="v")


def test_each_kind_of_volume_holds_its_files() -> None:
    assert files_of({"name": "tmp", "emptyDir": {"medium": "Memory"}}) is None
    assert files_of({"name": "c", "configMap": {"name": "profiles"}}) == {
        "profiles.yaml": (b"a: 1\n", 0o644)
    }
    chosen = {
        "name": "s",
        "secret": {
            "secretName": "tls",
            "defaultMode": 0o400,
            "items": [{"key": "tls.key", "path": "keys/server.key", "mode": 0o600}],
        },
    }
    assert files_of(chosen) == {"keys/server.key": (b"KEY", 0o600)}
    assert files_of({"name": "o", "secret": {"secretName": "nope", "optional": True}}) == {}


def test_the_projected_service_account_volume_has_a_bound_token_the_ca_and_the_namespace() -> None:
    tokens = Tokens()
    files = volume_files(
        pod(KUBE_API_ACCESS), KUBE_API_ACCESS, lookup=Objects().lookup, tokens=tokens, where="v"
    )
    assert files == {
        "token": (b"token-1", 0o644),
        "ca.crt": (CA, 0o644),
        "namespace": (b"ns", 0o644),
    }
    assert tokens.requests == [
        TokenRequest(
            namespace="ns",
            service_account="web",
            pod_name="p",
            pod_uid="uid-1",
            audience="",
            expiration_seconds=3607,
        )
    ]


@pytest.mark.parametrize(
    ("volume", "message"),
    [
        (
            {"name": "s", "secret": {"secretName": "nope"}},
            r"v.secret: secret ns/nope does not exist",
        ),
        (
            {"name": "c", "configMap": {"name": "profiles", "items": [{"key": "x", "path": "x"}]}},
            r"v.configMap.items\[0\]: configMap ns/profiles has no key 'x'",
        ),
        ({"name": "h", "hostPath": {"path": "/"}}, r"v: volume type hostPath is not one"),
    ],
)
def test_a_volume_that_cannot_be_made_names_the_field(volume: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        files_of(volume)


def test_decode_data() -> None:
    config_map = {"data": {"a": "x"}, "binaryData": {"b": base64.b64encode(b"\x00").decode()}}
    assert decode_data(config_map, base64_key="binaryData", text_key="data") == {
        "a": b"x",
        "b": b"\x00",
    }
    secret = {"data": {"k": base64.b64encode(b"v").decode()}}
    assert decode_data(secret, base64_key="data", text_key=None) == {"k": b"v"}


def test_the_atomic_layout_swaps_data_and_drops_what_went(tmp_path: Path) -> None:
    write_atomically(tmp_path, {"a.yaml": (b"1", 0o644), "d/b": (b"2", 0o600)})
    first = os.readlink(tmp_path / "..data")
    assert os.readlink(tmp_path / "a.yaml") == "..data/a.yaml"
    assert (tmp_path / "d" / "b").read_bytes() == b"2"
    assert (tmp_path / "d" / "b").resolve().stat().st_mode & 0o777 == 0o600
    write_atomically(tmp_path, {"a.yaml": (b"3", 0o644)})
    assert (tmp_path / "a.yaml").read_bytes() == b"3"
    assert os.readlink(tmp_path / "..data") != first
    assert not (tmp_path / first).exists()  # the old version is removed
    assert not (tmp_path / "d").exists()  # a name no longer there goes too
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("..2")) == [
        "..data",
        "a.yaml",
    ]


def test_sync_follows_the_objects_and_reuses_a_token_until_it_is_due(tmp_path: Path) -> None:
    objects, tokens = Objects(), Tokens()
    spec = pod(
        {"name": "profiles", "configMap": {"name": "profiles"}},
        {"name": "tmp", "emptyDir": {}},
        KUBE_API_ACCESS,
    )
    volumes = Volumes(spec, tmp_path, lookup=objects.lookup, tokens=tokens)
    volumes.sync()
    assert (tmp_path / "profiles" / "profiles.yaml").read_bytes() == b"a: 1\n"
    assert (tmp_path / "tmp").is_dir()
    assert (tmp_path / "kube-api-access-x" / "token").read_bytes() == b"token-1"
    data = os.readlink(tmp_path / "profiles" / "..data")
    volumes.sync()  # nothing changed: nothing rewritten, no new token
    assert os.readlink(tmp_path / "profiles" / "..data") == data
    assert len(tokens.requests) == 1
    objects.config_maps[("ns", "profiles")] = {"profiles.yaml": b"a: 2\n"}
    volumes.sync()
    assert (tmp_path / "profiles" / "profiles.yaml").read_bytes() == b"a: 2\n"
    assert len(tokens.requests) == 1


def test_a_token_past_80_percent_of_its_life_is_renewed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = Tokens()
    volumes = Volumes(pod(KUBE_API_ACCESS), tmp_path, lookup=Objects().lookup, tokens=tokens)
    now = [1000.0]
    monkeypatch.setattr("tooling.podrunner_volumes.time.monotonic", lambda: now[0])
    volumes.sync()
    now[0] += 0.79 * 3607
    volumes.sync()
    assert len(tokens.requests) == 1
    now[0] += 0.02 * 3607
    volumes.sync()
    assert len(tokens.requests) == 2
    assert (tmp_path / "kube-api-access-x" / "token").read_bytes() == b"token-2"
