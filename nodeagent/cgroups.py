"""Which pod a process belongs to, from its `/proc/<pid>/cgroup` (pure parsing, plus one reader).

The kubelet puts every container of a pod under a cgroup named after the pod's UID, whatever the
layout:

- cgroupfs driver: `/kubepods/burstable/pod<uid>/<container id>` (Guaranteed pods: no QoS level)
- systemd driver: `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid, _ for ->
  .slice/cri-containerd-<id>.scope` (CRI-O: `crio-<id>.scope`, Docker: `docker-<id>.scope`)

cgroup v1 lists one line per hierarchy (`12:memory:/kubepods/...`), v2 a single `0::/...` line.
The path can be relative to the reader's cgroup namespace (`0::/../../kubepods-...slice/...`) or
sit under another root (kind's `/kubelet.slice/kubelet-kubepods.slice/...`), so segments are
matched wherever they are. Static pods carry their 32-hex config hash as UID, and so does their
cgroup; that is reported as it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_UID = r"[0-9a-fA-F]{8}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{12}"
_POD_SEGMENT = re.compile(rf"(?:^|[-_.])pod(?P<uid>{_UID}|[0-9a-fA-F]{{32}})(?:\.slice)?$")
_CONTAINER_SEGMENT = re.compile(
    r"^(?:cri-containerd-|crio-|docker-|containerd-)?(?P<id>[0-9a-fA-F]{64})(?:\.scope)?$"
)


@dataclass(frozen=True)
class CgroupOwner:
    pod_uid: str  # as the API server writes it: lower case, dashes
    container_id: str = ""  # "" when the process sits in the pod's cgroup itself


def parse_cgroup_path(path: str) -> CgroupOwner | None:
    """The pod (and container) a cgroup path belongs to, or None for anything outside pods."""
    segments = [s for s in path.strip().split("/") if s]
    for position, segment in enumerate(segments):
        pod = _POD_SEGMENT.search(segment)
        if pod is None:
            continue
        uid = pod.group("uid").lower().replace("_", "-")
        after = segments[position + 1] if position + 1 < len(segments) else ""
        container = _CONTAINER_SEGMENT.match(after)
        return CgroupOwner(uid, container.group("id").lower() if container else "")
    return None


def parse_proc_cgroup(text: str) -> CgroupOwner | None:
    """The owner named by a `/proc/<pid>/cgroup` file: the first line (v1 or v2) that names a pod.
    Malformed lines are skipped: the file comes from the kernel, but a reader must not crash."""
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        owner = parse_cgroup_path(parts[2])
        if owner is not None:
            return owner
    return None


class PodLocator:
    """Reads `<proc_root>/<pid>/cgroup`. The agent needs the host's PID namespace (`hostPID`) for
    NVML's PIDs to be found here; a process it cannot see counts as outside any pod."""

    def __init__(self, proc_root: Path) -> None:
        self.proc_root = proc_root

    def owner(self, pid: int) -> CgroupOwner | None:
        if pid <= 0:
            return None
        try:
            text = (self.proc_root / str(pid) / "cgroup").read_text(errors="replace")
        except OSError:  # gone since NVML listed it, or not visible from here
            return None
        return parse_proc_cgroup(text)

    def pod_uid(self, pid: int) -> str | None:
        owner = self.owner(pid)
        return owner.pod_uid if owner else None
