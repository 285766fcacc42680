"""Simulated GPU nodes: the Node object, the GPUs behind the fake NVML, a fake /proc, and the
node agent that reads them.

Each node has its own fake NVML state file (the format at the top of the fake library's
`fake_nvml.c`) and its own proc root. A process on a GPU is a pid in the state file with its
memory; `<proc-root>/<pid>/cgroup` says whose it is (a pod's cgroup, or a system service for
memory held outside Kubernetes), which is how the real agent attributes it. A lost GPU answers
every NVML call with GPU_IS_LOST. The demo's kubelet adds and removes pod processes; the
timeline ends outside processes. The library itself is the one the test suite compiles
(tooling/fakenvml).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from headroom import names
from kubeapi.client import Kube
from tooling import fakenvml
from tooling.demo.model import NodeGroup

STATE_ENV = "HEADROOM_FAKE_NVML"
DEMO_LABEL = "headroom.dev/demo-node"
PRODUCT_LABEL = "nvidia.com/gpu.product"
MIB = 2**20
UUID_NAMESPACE = uuid.UUID("6f0e6a52-4d1f-4b55-9b0e-68656164726f")


class NodeError(RuntimeError):
    """A simulated node could not be set up; the message says what is missing."""


def fake_nvml_library() -> Path:
    """The compiled fake libnvidia-ml.so.1 (built once per machine, cached)."""
    return fakenvml.build()


def gpu_uuid(node_name: str, index: int) -> str:
    """The UUID the fake NVML gives GPU `index` of a node (and the DRA slice publishes)."""
    return f"GPU-{uuid.uuid5(UUID_NAMESPACE, f'{node_name}/{index}')}"


@dataclass
class GpuProcess:
    pid: int
    gpu: int
    used_bytes: int
    owner: str  # a pod UID, or "outside:<name>"


@dataclass
class SimNode:
    """One node's GPUs as the fake NVML shows them; every change is written at once."""

    name: str
    group: NodeGroup
    directory: Path
    processes: dict[int, GpuProcess] = field(default_factory=dict)
    _next_pid: int = 4000
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _write_lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        (self.directory / "proc").mkdir(parents=True, exist_ok=True)
        for outside in self.group.outside:
            self._add(
                outside.gpu,
                outside.memory_bytes,
                owner=f"outside:{outside.name}",
                cgroup=f"0::/system.slice/{outside.name}.service\n",
            )
        self.write()

    @property
    def state_path(self) -> Path:
        return self.directory / "nvml.json"

    @property
    def proc_root(self) -> Path:
        return self.directory / "proc"

    def gpu_uuid(self, index: int) -> str:
        return gpu_uuid(self.name, index)

    def healthy(self, index: int) -> bool:
        return index not in self.group.lost_gpus

    # -- changes ---------------------------------------------------------------------------------
    def add_pod_process(self, gpu: int, used_bytes: int, *, pod_uid: str) -> int:
        systemd_uid = pod_uid.replace("-", "_")
        cgroup = (
            f"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"
            f"{systemd_uid}.slice/cri-containerd-{uuid.uuid4().hex * 2}.scope\n"
        )
        with self._lock:
            pid = self._add(gpu, used_bytes, owner=pod_uid, cgroup=cgroup)
        self.write()
        return pid

    def remove_owner(self, owner: str) -> int:
        """Remove every process of a pod UID (or `outside:<name>`); returns how many."""
        with self._lock:
            pids = [p.pid for p in self.processes.values() if p.owner == owner]
            for pid in pids:
                del self.processes[pid]
                (self.proc_root / str(pid) / "cgroup").unlink(missing_ok=True)
        if pids:
            self.write()
        return len(pids)

    def _add(self, gpu: int, used_bytes: int, *, owner: str, cgroup: str) -> int:
        self._next_pid += 1
        pid = self._next_pid
        (self.proc_root / str(pid)).mkdir(parents=True, exist_ok=True)
        (self.proc_root / str(pid) / "cgroup").write_text(cgroup)
        self.processes[pid] = GpuProcess(pid, gpu, used_bytes, owner)
        return pid

    # -- reading ---------------------------------------------------------------------------------
    def used_bytes(self, gpu: int) -> int:
        with self._lock:
            return sum(p.used_bytes for p in self.processes.values() if p.gpu == gpu)

    def outside_bytes(self, gpu: int) -> int:
        with self._lock:
            return sum(
                p.used_bytes
                for p in self.processes.values()
                if p.gpu == gpu and p.owner.startswith("outside:")
            )

    def state(self) -> dict[str, Any]:
        with self._lock:
            procs = list(self.processes.values())
        devices = []
        for index in range(self.group.gpus):
            mine = [p for p in procs if p.gpu == index]
            device: dict[str, Any] = {
                "uuid": self.gpu_uuid(index),
                "name": self.group.product,
                "memory_total": self.group.gpu_memory_bytes,
                "memory_reserved": 0,
                "memory_used": min(self.group.gpu_memory_bytes, sum(p.used_bytes for p in mine)),
                "gpu_util": 70 if mine else 0,
                "mem_util": 40 if mine else 0,
                "temperature_c": 62 if mine else 38,
                "power_mw": 250_000 if mine else 60_000,
                "mig_current": 0,
                "mig_pending": 0,
                "processes": [{"pid": p.pid, "used": p.used_bytes} for p in mine],
            }
            if not self.healthy(index):
                device["errors"] = {"*": "GPU_IS_LOST"}
            devices.append(device)
        return {"driver_version": "550.54.15", "devices": devices}

    def write(self) -> None:
        """Atomically (temporary file + rename): the library never reads half a file."""
        with self._write_lock:  # one writer at a time, or an older state could land last
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".nvml-")
            with os.fdopen(fd, "w") as out:
                json.dump(self.state(), out)
            os.replace(tmp, self.state_path)


def product_label(product: str) -> str:
    """The product as a label value, as GPU feature discovery writes it."""
    return product.replace(" ", "-")[:63]


def node_object(node: SimNode) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Node (as GPU feature discovery labels it and the GPU operator taints it) and its
    status (as a kubelet with the NVIDIA device plugin reports it: lost GPUs not allocatable).

    A DRA node (as on a GPUCluster stack) has neither: its GPUs are in a ResourceSlice, so
    device-plugin pods (`nvidia.com/gpu`, the webhook's `nvidia.com/gpu.present` affinity) never
    land there, and claim pods land only where the allocator finds their devices."""
    group = node.group
    labels = {"kubernetes.io/hostname": node.name, DEMO_LABEL: "true"}
    if not group.dra:
        labels |= {
            names.GPU_PRESENT_NODE_LABEL: "true",
            names.GPU_MEMORY_NODE_LABEL: str(group.gpu_memory_bytes // MIB),
            PRODUCT_LABEL: product_label(group.product),
            "nvidia.com/gpu.count": str(group.gpus),
        }
    obj = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": node.name, "labels": labels},
        "spec": {
            "taints": [{"key": names.GPU_TAINT_KEY, "value": "present", "effect": "NoSchedule"}]
        },
    }
    capacity = {"cpu": "64", "memory": "512Gi", "pods": "110"}
    allocatable = dict(capacity)
    if not group.dra:
        capacity[names.GPU_RESOURCE] = str(group.gpus)
        allocatable[names.GPU_RESOURCE] = str(group.gpus - len(group.lost_gpus))
    status = {
        "capacity": capacity,
        "allocatable": allocatable,
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "simulated by headroom demo",
            }
        ],
        "addresses": [{"type": "Hostname", "address": node.name}],
    }
    return obj, status


def register_node(kube: Kube, node: SimNode) -> None:
    obj, status = node_object(node)
    kube.request("POST", "/api/v1/nodes", body=obj)
    # A patch, not a PUT: kube-controller-manager annotates new Nodes meanwhile.
    kube.request(
        "PATCH",
        f"/api/v1/nodes/{node.name}/status",
        body={"status": status},
        content_type="application/merge-patch+json",
    )


def agent_argv(
    node: SimNode, *, kubeconfig: Path, metrics_port: int, interval_seconds: float
) -> list[str]:
    return [
        str(Path(sys.executable).parent / "headroom"),
        "nodeagent",
        "--node-name",
        node.name,
        "--kubeconfig",
        str(kubeconfig),
        "--interval-seconds",
        f"{interval_seconds:g}",
        "--proc-root",
        str(node.proc_root),
        "--metrics-bind",
        f"127.0.0.1:{metrics_port}",
    ]


def agent_env(node: SimNode, library: Path) -> dict[str, str]:
    """As the NVIDIA container runtime would: the driver's library directory on the path."""
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        p for p in (str(library.parent), env.get("LD_LIBRARY_PATH", "")) if p
    )
    env[STATE_ENV] = str(node.state_path)
    return env
