"""What a container runs, resolved as the kubelet resolves it: $(VAR) expansion, env sources,
the downward API, images, and the podrunner's fill-ins (mount paths, --in-cluster)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tooling.podrunner_env import (
    Image,
    Lookup,
    MountMap,
    SpecError,
    argv,
    config_flag,
    container_env,
    expand,
    field_value,
    find_image,
    split_image,
    with_client_kubeconfig,
)

CONFIG_MAPS = {("ns", "settings"): {"level": b"debug", "mode": b"fast"}}
SECRETS = {("ns", "creds"): {"password": b"s3cret"}}
LOOKUP = Lookup(
    config_map=lambda ns, name: CONFIG_MAPS.get((ns, name)),
    secret=lambda ns, name: SECRETS.get((ns, name)),
)
HEADROOM = Image(
    repository="headroom/headroom",
    tag="0.1.0",
    bin_dirs=(Path("/venv/bin"),),
    entrypoint=("headroom",),
    cmd=("--help",),
)


def pod(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "web-1",
            "namespace": "ns",
            "uid": "u-1",
            "labels": {"app": "web"},
            "annotations": {"team": "gpu"},
        },
        "spec": {"nodeName": "node-a", "serviceAccountName": "web", **spec},
        "status": {"podIP": "192.0.2.7", "podIPs": [{"ip": "192.0.2.7"}], "hostIP": "192.0.2.7"},
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("--identity=$(POD_NAME)", "--identity=web-1"),
        ("$(POD_NAME)-$(POD_NAME)", "web-1-web-1"),
        ("$(UNSET) stays", "$(UNSET) stays"),
        ("$$(POD_NAME) is escaped", "$(POD_NAME) is escaped"),
        ("$$ alone", "$ alone"),
        ("cost $5", "cost $5"),
        ("trailing $", "trailing $"),
        ("open $(POD_NAME", "open $(POD_NAME"),
    ],
)
def test_expand_follows_the_kubelet_rules(text: str, expected: str) -> None:
    assert expand(text, {"POD_NAME": "web-1"}) == expected


def test_field_values_come_from_the_pod_and_its_status() -> None:
    p = pod()
    assert field_value(p, "metadata.name", where="x") == "web-1"
    assert field_value(p, "metadata.namespace", where="x") == "ns"
    assert field_value(p, "spec.nodeName", where="x") == "node-a"
    assert field_value(p, "status.podIP", where="x") == "192.0.2.7"
    assert field_value(p, "metadata.labels['app']", where="x") == "web"
    assert field_value(p, "metadata.annotations['team']", where="x") == "gpu"
    with pytest.raises(SpecError, match=r"^spec.containers\[0\].env\[0\]: fieldPath 'spec.x'"):
        field_value(p, "spec.x", where="spec.containers[0].env[0]")


def test_env_resolves_every_source_in_order_with_expansion() -> None:
    container = {
        "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}],
        "env": [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "WHO", "value": "$(POD_NAME)@$(NODE)"},
            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
            {
                "name": "LEVEL",
                "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "level"}},
            },
            {"name": "CFG_mode", "value": "slow"},  # a later env entry wins over envFrom
            {
                "name": "GONE",
                "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k", "optional": True}},
            },
        ],
    }
    env = container_env(pod(), container, lookup=LOOKUP, where="spec.containers[0]")
    assert env == {
        "CFG_level": "debug",
        "CFG_mode": "slow",
        "POD_NAME": "web-1",
        "NODE": "node-a",
        "IP": "192.0.2.7",
        "WHO": "web-1@node-a",
        "PW": "s3cret",
        "LEVEL": "debug",
    }


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            {"secretKeyRef": {"name": "creds", "key": "user"}},
            r"env\[0\].valueFrom.secretKeyRef: ns/creds has no key 'user'",
        ),
        (
            {"configMapKeyRef": {"name": "missing", "key": "k"}},
            r"env\[0\].valueFrom.configMapKeyRef: ns/missing does not exist",
        ),
        (
            {"resourceFieldRef": {"resource": "limits.cpu"}},
            r"env\[0\].valueFrom: resourceFieldRef: not a source podrunner resolves",
        ),
    ],
)
def test_an_unresolvable_env_names_the_field(source: dict[str, Any], message: str) -> None:
    container = {"env": [{"name": "X", "valueFrom": source}]}
    with pytest.raises(SpecError, match=message):
        container_env(pod(), container, lookup=LOOKUP, where="spec.containers[0]")


def test_mount_paths_are_rewritten_as_whole_components_deepest_first() -> None:
    mounts = MountMap(
        {
            "/etc/headroom": Path("/w/config"),
            "/etc/headroom/tls/": Path("/w/tls"),
            "/tmp": Path("/w/tmp"),
        }
    )
    assert mounts.rewrite("--certfile=/etc/headroom/tls/tls.crt") == "--certfile=/w/tls/tls.crt"
    assert mounts.rewrite("--config=/etc/headroom/a.yaml") == "--config=/w/config/a.yaml"
    assert mounts.rewrite("/etc/headroomx/a") == "/etc/headroomx/a"
    assert mounts.rewrite("/var/etc/headroom") == "/var/etc/headroom"
    assert mounts.rewrite("a=/tmp,b=/tmp/x") == "a=/w/tmp,b=/w/tmp/x"
    assert mounts.host_path("/etc/headroom/tls") == Path("/w/tls")
    assert MountMap({}).rewrite("/etc/headroom") == "/etc/headroom"


def test_argv_over_the_image_entrypoint_with_the_fill_ins() -> None:
    mounts = MountMap({"/etc/headroom/tls": Path("/w/tls")})
    container = {
        "args": ["webhook", "--in-cluster", "--certfile=/etc/headroom/tls/tls.crt", "--id=$(N)"]
    }
    words = argv(container, HEADROOM, env={"N": "p-1"}, mounts=mounts, kubeconfig=Path("/w/k"))
    assert words == [
        "headroom",
        "webhook",
        "--kubeconfig=/w/k",
        "--certfile=/w/tls/tls.crt",
        "--id=p-1",
    ]
    # Without the account's token mounted, --in-cluster stays (and fails as it would in a pod).
    assert "--in-cluster" in argv(container, HEADROOM, env={}, mounts=mounts, kubeconfig=None)


def test_argv_defaults_and_command() -> None:
    empty = MountMap({})
    assert argv({}, HEADROOM, env={}, mounts=empty, kubeconfig=None) == ["headroom", "--help"]
    command = {"command": ["headroom", "nodeagent"], "args": ["--once"]}
    assert argv(command, HEADROOM, env={}, mounts=empty, kubeconfig=None) == [
        "headroom",
        "nodeagent",
        "--once",
    ]
    # A command without args does not take the image's CMD (the kubelet's rule).
    assert argv({"command": ["headroom"]}, HEADROOM, env={}, mounts=empty, kubeconfig=None) == [
        "headroom"
    ]


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("headroom/headroom:0.1.0", ("headroom/headroom", "0.1.0")),
        ("headroom/headroom", ("headroom/headroom", "")),
        ("registry:5000/headroom/headroom", ("registry:5000/headroom/headroom", "")),
        ("registry:5000/h/h:1@sha256:abc", ("registry:5000/h/h", "1")),
    ],
)
def test_split_image(reference: str, expected: tuple[str, str]) -> None:
    assert split_image(reference) == expected


def test_find_image_refuses_other_images_and_tags() -> None:
    assert find_image("headroom/headroom:0.1.0", [HEADROOM], where="i") is HEADROOM
    with pytest.raises(SpecError, match=r"^i: image headroom/headroom:0.2.0: only tag '0.1.0'"):
        find_image("headroom/headroom:0.2.0", [HEADROOM], where="i")
    with pytest.raises(
        SpecError, match=r"nginx:1: podrunner runs only headroom/headroom:0.1.0"
    ) as refused:
        find_image("nginx:1", [HEADROOM], where="i")
    assert refused.value.reason == "ErrImageNeverPull"  # the container's waiting reason


def test_the_config_file_fill_in_finds_the_flag_and_keeps_a_chosen_kubeconfig() -> None:
    assert config_flag(["kube-scheduler", "--config=/etc/s.yaml"]) == (1, "/etc/s.yaml")
    assert config_flag(["kube-scheduler", "--config", "/etc/s.yaml", "-v=1"]) == (2, "/etc/s.yaml")
    assert config_flag(["kube-scheduler", "--config"]) is None
    config = {"kind": "KubeSchedulerConfiguration", "clientConnection": {"qps": 50}}
    assert with_client_kubeconfig(config, Path("/w/k")) == {
        "kind": "KubeSchedulerConfiguration",
        "clientConnection": {"qps": 50, "kubeconfig": "/w/k"},
    }
    chosen = {"clientConnection": {"kubeconfig": "/etc/own"}}
    assert with_client_kubeconfig(chosen, Path("/w/k")) == chosen
