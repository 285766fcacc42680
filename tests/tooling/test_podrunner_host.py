"""The podrunner's node-level pieces: the images it can run (the Dockerfile's ENV, the versions
here), this host's address, and the Node it registers."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from tooling.localcluster import KUBERNETES_VERSION
from tooling.podrunner_host import HEADROOM_IMAGE_ENV, default_images, host_ipv4, node_object

DOCKERFILE = Path(__file__).resolve().parents[2] / "Dockerfile"


def final_stage_env() -> dict[str, str]:
    """The ENV of the Dockerfile's last stage (continued lines joined)."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    last_stage = text.rsplit("\nFROM ", 1)[1]
    env: dict[str, str] = {}
    for line in last_stage.splitlines():
        if line.startswith("ENV "):
            env.update(re.findall(r"(\w+)=(\S+)", line))
    return env


def test_the_headroom_image_env_is_the_dockerfiles() -> None:
    assert final_stage_env() == HEADROOM_IMAGE_ENV


def test_the_images_are_the_venvs_headroom_and_the_control_planes_scheduler() -> None:
    headroom, scheduler = default_images()
    assert headroom.entrypoint == ("headroom",)
    assert (headroom.bin_dirs[0] / "headroom").exists()
    assert scheduler.tag == f"v{KUBERNETES_VERSION}"
    assert scheduler.repository == "registry.k8s.io/kube-scheduler"


def test_the_host_address_is_never_loopback_or_link_local() -> None:
    found = host_ipv4()
    print(f"host address: {found}")
    if found is not None:
        address = ipaddress.IPv4Address(found)
        assert not address.is_loopback and not address.is_link_local


def test_the_node_is_ready_with_this_hosts_address_and_labels() -> None:
    node = node_object(
        "n1",
        host_ip="192.0.2.2",
        labels={"nvidia.com/gpu.present": "true"},
        capacity={"nvidia.com/gpu": "1"},
    )
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == "n1"
    assert node["metadata"]["labels"]["nvidia.com/gpu.present"] == "true"
    status = node["status"]
    assert {"type": "InternalIP", "address": "192.0.2.2"} in status["addresses"]
    ready = [c for c in status["conditions"] if c["type"] == "Ready"]
    assert ready == [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]
    assert int(status["allocatable"]["cpu"]) >= 1
    assert status["allocatable"]["memory"].endswith("Ki")
    assert status["allocatable"]["nvidia.com/gpu"] == "1"
