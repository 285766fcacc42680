"""The node agent on NVIDIA's own mock NVML (github.com/NVIDIA/k8s-test-infra, pkg/gpu/mocknvml),
an NVML nobody here wrote: the mock's A100 and H100 profiles, with running processes added, read
through the agent's real path (`headroom nodeagent --once`, pynvml loading libnvidia-ml.so.1 from
LD_LIBRARY_PATH) and through the NVML reader itself. Every expected number is read from the
profile the mock is given, not from our fake or our output (tests/nodeagent/mocknvml.py).

The mock is built by tooling/mocknvml/build.sh once per machine (`make mock-nvml`). Where its module
cannot be had, these tests skip saying why; HEADROOM_REQUIRE_MOCKNVML=1 makes that a failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.nodeagent.mocknvml import (
    ExpectedGpu,
    MockNvml,
    MockNvmlUnavailable,
    build,
    expected_gpus,
    load_profile,
    mock_env,
    with_processes,
    write_profile,
)
from tooling.fakenvml import pod_cgroup, write_proc

SCRIPT = Path(sys.executable).parent / "headroom"
REQUIRE_ENV = "HEADROOM_REQUIRE_MOCKNVML"

# GPU index -> the (pid, MiB) running on it. Each profile keeps some GPUs idle, runs two processes
# on one GPU, and has a process outside any pod, whose memory stays unattributed.
RUNNING = {
    "a100": {0: [(4101, 10_240), (4102, 2_048)], 3: [(4301, 30_000), (4399, 512)]},
    "h100": {1: [(5101, 40_960)], 7: [(5701, 8_192), (5702, 700)]},
}
OUTSIDE_PODS = {4399, 5702}


def pod_uid(pid: int) -> str:
    return f"00000000-0000-4000-8000-{pid:012d}"


@pytest.fixture(scope="session")
def mock_nvml() -> MockNvml:
    try:
        return build()
    except MockNvmlUnavailable as exc:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"NVIDIA's mock NVML is required ({REQUIRE_ENV}=1) but: {exc}")
        pytest.skip(
            f"NVIDIA's mock NVML cannot be built here: {exc} "
            f"(set {REQUIRE_ENV}=1 to make this a failure)"
        )


def expected_status(gpu: ExpectedGpu) -> dict[str, Any]:
    """The GPUNode status entry the agent should write for this GPU (headroom.report)."""
    used = gpu.total_bytes - gpu.free_bytes  # DESIGN.md: used is everything not free
    in_pods = sorted((pod_uid(pid), n) for pid, n in gpu.processes if pid not in OUTSIDE_PODS)
    status: dict[str, Any] = {
        "index": gpu.index,
        "uuid": gpu.uuid,
        "model": gpu.model,
        "totalBytes": gpu.total_bytes,
        "usedBytes": used,
        "healthy": True,
        "reason": "",
        "unattributedBytes": used - sum(n for _, n in in_pods),
        "pods": [{"uid": uid, "namespace": "", "name": "", "usedBytes": n} for uid, n in in_pods],
    }
    optional = {
        "utilizationPercent": gpu.utilization_percent,
        "memoryUtilizationPercent": gpu.memory_utilization_percent,
        "temperatureCelsius": gpu.temperature_celsius,
        "powerWatts": gpu.power_watts,
        "migEnabled": gpu.mig_enabled,
    }
    status.update({k: v for k, v in optional.items() if v is not None})
    return status


READ_DEVICES = """\
import json
from dataclasses import asdict
from nodeagent.nvml import Nvml
nvml = Nvml()
nvml.open()
devices = [asdict(r) for r in nvml.read_devices()]
print(json.dumps({"driver": nvml.driver_version, "devices": devices}))
nvml.close()
"""


@pytest.mark.timeout(1800)  # the first test may wait for a cold build of the mock
@pytest.mark.parametrize("name", sorted(RUNNING))
def test_the_agent_reports_what_the_mock_profile_defines(
    mock_nvml: MockNvml, tmp_path: Path, name: str
) -> None:
    profile = with_processes(load_profile(mock_nvml.profile_path(name)), RUNNING[name])
    env = mock_env(mock_nvml, write_profile(profile, tmp_path / f"{name}.yaml"))
    expected = expected_gpus(profile)
    for pids in RUNNING[name].values():
        for pid, _ in pids:
            if pid not in OUTSIDE_PODS:
                write_proc(tmp_path / "proc", pid, pod_cgroup(pod_uid(pid)))

    # The reader: every query answered, and each GPU's processes with their PIDs and memory.
    read = subprocess.run(
        [sys.executable, "-c", READ_DEVICES],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert read.returncode == 0, read.stderr
    readings = json.loads(read.stdout)
    assert readings["driver"] == profile["system"]["driver_version"]
    assert [(d["index"], d["error"]) for d in readings["devices"]] == [
        (g.index, "") for g in expected
    ]
    seen = {
        d["index"]: None
        if d["processes"] is None
        else [(p["pid"], p["used_bytes"]) for p in d["processes"]]
        for d in readings["devices"]
    }
    assert seen == {g.index: list(g.processes) for g in expected}, (
        "the processes NVML listed differ from the profile's; where a list is empty but the "
        "profile has processes, see how the library answers pynvml's sizing call (infos=NULL, "
        "*infoCount=0): NVML answers INSUFFICIENT_SIZE, and pynvml takes SUCCESS to mean none"
    )

    # The agent's real path: one report through the console script, pods from /proc.
    once = subprocess.run(
        [
            str(SCRIPT),
            "nodeagent",
            "--once",
            "--node-name",
            f"mock-{name}",
            "--proc-root",
            str(tmp_path / "proc"),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert once.returncode == 0, once.stdout + once.stderr
    status = json.loads(once.stdout)
    assert (status["healthy"], status["reason"], status["gpuCount"], status["healthyGPUs"]) == (
        True,
        "",
        len(expected),
        len(expected),
    )
    assert status["gpus"] == [expected_status(g) for g in expected]
