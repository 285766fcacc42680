"""The podrunner's host: what runs here (the images: the venv's Headroom, the control plane's
kube-scheduler), this host's address (a pod's IP), whether a container may have a hostname of its
own, and the Node that stands for the host."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import platform
import shutil
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from tooling.localcluster import BIN_DIR, KUBERNETES_VERSION
from tooling.podrunner_env import Image, JsonDict

# The image's ENV, as the Dockerfile's final stage sets it (a test compares the two).
HEADROOM_IMAGE_ENV = {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}


def default_images() -> tuple[Image, ...]:
    """Headroom's image (the venv this runs in) and kube-scheduler's (the control plane's)."""
    from importlib.metadata import version  # noqa: PLC0415

    return (
        Image(
            repository="headroom/headroom",
            tag=version("headroom"),
            bin_dirs=(Path(sys.executable).parent,),
            entrypoint=("headroom",),
            cmd=("--help",),
            env=HEADROOM_IMAGE_ENV,
        ),
        Image(
            repository="registry.k8s.io/kube-scheduler",
            tag=f"v{KUBERNETES_VERSION}",
            bin_dirs=(BIN_DIR,),
            config_file_access=True,
        ),
    )


def host_ipv4() -> str | None:
    """This host's first IPv4 address that is not loopback or link-local (Endpoint validation
    refuses those), or None when it has none."""
    try:
        out = subprocess.run(
            ["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, check=False
        ).stdout
    except OSError:
        out = ""
    candidates = [line.split()[3].split("/")[0] for line in out.splitlines() if " inet " in line]
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(("192.0.2.1", 9))  # no packet is sent: this only picks a source address
        candidates.append(sock.getsockname()[0])
    for text in candidates:
        address = ipaddress.IPv4Address(text)
        if not (address.is_loopback or address.is_link_local or address.is_unspecified):
            return text
    return None


def uts_unshare() -> str | None:
    """`unshare` when it may make a UTS namespace here (it needs CAP_SYS_ADMIN), else None."""
    found = shutil.which("unshare")
    if found is None:
        return None
    result = subprocess.run(
        [found, "--uts", "--", "true"], capture_output=True, check=False, timeout=10
    )
    return found if result.returncode == 0 else None


def node_object(
    name: str, *, host_ip: str, labels: Mapping[str, str], capacity: Mapping[str, str]
) -> JsonDict:
    """A Ready Node for this host: its CPUs and memory (and `capacity`, e.g. nvidia.com/gpu, as
    a device plugin would add it), the pod IP as its address."""
    memory_kib = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        memory_kib = int(Path("/proc/meminfo").read_text().split("\n")[0].split()[1])
    capacity = {
        "cpu": str(os.cpu_count() or 1),
        "memory": f"{memory_kib}Ki",
        "pods": "110",
        **capacity,
    }
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": arch,
                **labels,
            },
        },
        "status": {
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "KubeletReady"},
                {
                    "type": "MemoryPressure",
                    "status": "False",
                    "reason": "KubeletHasSufficientMemory",
                },
                {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure"},
                {"type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID"},
            ],
            "addresses": [
                {"type": "InternalIP", "address": host_ip},
                {"type": "Hostname", "address": name},
            ],
            "nodeInfo": {
                "kubeletVersion": f"v{KUBERNETES_VERSION}",
                "containerRuntimeVersion": "podrunner://0",
                "operatingSystem": "linux",
                "architecture": arch,
                "kernelVersion": platform.release(),
                "osImage": "podrunner",
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
                "kubeProxyVersion": "",
            },
        },
    }
