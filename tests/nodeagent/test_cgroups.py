"""PID -> pod UID from /proc/<pid>/cgroup, as the kernel writes it under the layouts Kubernetes
nodes run: cgroup v1 and v2, systemd and cgroupfs drivers, containerd, CRI-O and Docker."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nodeagent.cgroups import CgroupOwner, PodLocator, parse_cgroup_path, parse_proc_cgroup
from tooling.fakenvml import write_proc

UID = "8f2b4e1a-3c4d-4e5f-9a6b-7c8d9e0f1a2b"
UID_ = UID.replace("-", "_")
CID = "4f1c2b3a9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a"
STATIC_UID = "3a1b5c7d9e0f2a4b6c8d0e1f3a5b7c9d"  # a static pod's config hash

V1_CGROUPFS_DOCKER = f"""\
12:pids:/kubepods/burstable/pod{UID}/{CID}
11:hugetlb:/kubepods/burstable/pod{UID}/{CID}
10:memory:/kubepods/burstable/pod{UID}/{CID}
9:devices:/kubepods/burstable/pod{UID}/{CID}
8:cpu,cpuacct:/kubepods/burstable/pod{UID}/{CID}
7:blkio:/kubepods/burstable/pod{UID}/{CID}
6:freezer:/kubepods/burstable/pod{UID}/{CID}
5:net_cls,net_prio:/kubepods/burstable/pod{UID}/{CID}
4:perf_event:/kubepods/burstable/pod{UID}/{CID}
3:cpuset:/kubepods/burstable/pod{UID}/{CID}
2:rdma:/
1:name=systemd:/kubepods/burstable/pod{UID}/{CID}
0::/
"""
V1_SYSTEMD_CONTAINERD = f"""\
12:memory:/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/cri-containerd-{CID}.scope
11:cpu,cpuacct:/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/cri-containerd-{CID}.scope
1:name=systemd:/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/cri-containerd-{CID}.scope
"""
V1_SYSTEMD_CRIO_GUARANTEED = f"""\
10:devices:/kubepods.slice/kubepods-pod{UID_}.slice/crio-{CID}.scope
1:name=systemd:/kubepods.slice/kubepods-pod{UID_}.slice/crio-{CID}.scope
"""

CASES = {
    "v2 systemd containerd burstable": (
        f"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/"
        f"cri-containerd-{CID}.scope\n",
        CgroupOwner(UID, CID),
    ),
    "v2 systemd crio besteffort": (
        f"0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/"
        f"crio-{CID}.scope\n",
        CgroupOwner(UID, CID),
    ),
    "v2 systemd guaranteed": (
        f"0::/kubepods.slice/kubepods-pod{UID_}.slice/cri-containerd-{CID}.scope\n",
        CgroupOwner(UID, CID),
    ),
    "v2 cgroupfs": (f"0::/kubepods/besteffort/pod{UID}/{CID}\n", CgroupOwner(UID, CID)),
    "v2 cgroupfs guaranteed": (f"0::/kubepods/pod{UID}/{CID}\n", CgroupOwner(UID, CID)),
    "v2 seen from a private cgroup namespace": (
        f"0::/../../kubepods-burstable-pod{UID_}.slice/cri-containerd-{CID}.scope\n",
        CgroupOwner(UID, CID),
    ),
    "v2 kind node (kubelet.slice root)": (
        f"0::/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/"
        f"kubelet-kubepods-besteffort-pod{UID_}.slice/cri-containerd-{CID}.scope\n",
        CgroupOwner(UID, CID),
    ),
    "v2 nested under docker (minikube)": (
        f"0::/docker/{'e' * 64}/kubepods/burstable/pod{UID}/{CID}\n",
        CgroupOwner(UID, CID),
    ),
    "v2 process in the pod cgroup itself": (
        f"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice\n",
        CgroupOwner(UID),
    ),
    "v2 crio conmon (not a container)": (
        f"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/"
        f"crio-conmon-{CID}.scope\n",
        CgroupOwner(UID),
    ),
    "v1 cgroupfs docker": (V1_CGROUPFS_DOCKER, CgroupOwner(UID, CID)),
    "v1 systemd containerd": (V1_SYSTEMD_CONTAINERD, CgroupOwner(UID, CID)),
    "v1 systemd crio guaranteed": (V1_SYSTEMD_CRIO_GUARANTEED, CgroupOwner(UID, CID)),
    "v1 systemd docker": (
        f"4:memory:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/"
        f"docker-{CID}.scope\n",
        CgroupOwner(UID, CID),
    ),
    "static pod (config hash as UID)": (
        f"0::/kubepods/burstable/pod{STATIC_UID}/{CID}\n",
        CgroupOwner(STATIC_UID, CID),
    ),
    "upper-case hex is normalised": (
        f"0::/kubepods/burstable/pod{UID.upper()}/{CID}\n",
        CgroupOwner(UID, CID),
    ),
    "v2 host service": ("0::/system.slice/containerd.service\n", None),
    "v2 user session": ("0::/user.slice/user-1000.slice/session-3.scope\n", None),
    "v2 init": ("0::/init.scope\n", None),
    "v2 docker container outside Kubernetes": (f"0::/system.slice/docker-{CID}.scope\n", None),
    "v1 host process": ("12:memory:/\n11:cpu,cpuacct:/\n1:name=systemd:/init.scope\n", None),
    "kubepods slice without a pod": ("0::/kubepods.slice/kubepods-burstable.slice\n", None),
    "a truncated UID is no UID": (f"0::/kubepods/burstable/pod{UID[:-1]}/{CID}\n", None),
    "empty file": ("", None),
    "garbage": ("not a cgroup file\n::\n\x00\x01\n", None),
}


@pytest.mark.parametrize(("text", "expected"), CASES.values(), ids=CASES.keys())
def test_proc_cgroup_lines(text: str, expected: CgroupOwner | None) -> None:
    assert parse_proc_cgroup(text) == expected


def test_the_first_line_naming_a_pod_wins_over_host_lines() -> None:
    text = f"0::/\n3:cpuset:/\n1:name=systemd:/kubepods/pod{UID}/{CID}\n"
    assert parse_proc_cgroup(text) == CgroupOwner(UID, CID)


@given(st.text())
def test_any_text_parses_without_crashing(text: str) -> None:
    owner = parse_proc_cgroup(text)
    assert owner is None or owner.pod_uid


@given(st.uuids(), st.sampled_from(["burstable", "besteffort", ""]))
def test_systemd_and_cgroupfs_names_of_a_pod_agree(uid: object, qos: str) -> None:
    u = str(uid)
    systemd_pod = (
        f"kubepods-{qos}-pod{u.replace('-', '_')}.slice"
        if qos
        else f"kubepods-pod{u.replace('-', '_')}.slice"
    )
    systemd_qos = f"/kubepods-{qos}.slice" if qos else ""
    systemd = f"/kubepods.slice{systemd_qos}/{systemd_pod}/cri-containerd-{CID}.scope"
    cgroupfs = f"/kubepods/{qos + '/' if qos else ''}pod{u}/{CID}"
    assert parse_cgroup_path(systemd) == parse_cgroup_path(cgroupfs) == CgroupOwner(u, CID)


def test_the_locator_reads_the_proc_root(tmp_path: Path) -> None:
    write_proc(tmp_path, 4242, CASES["v2 cgroupfs"][0])
    write_proc(tmp_path, 4243, CASES["v2 init"][0])
    locator = PodLocator(tmp_path)
    assert locator.pod_uid(4242) == UID
    assert locator.owner(4242) == CgroupOwner(UID, CID)
    assert locator.pod_uid(4243) is None
    assert locator.pod_uid(4244) is None  # exited, or in another PID namespace
    assert locator.pod_uid(0) is None
