"""NVIDIA's own mock NVML for the node agent's tests: an NVML nobody here wrote.

The library is the libnvidia-ml.so of the Go module github.com/NVIDIA/k8s-test-infra (package
pkg/gpu/mocknvml/bridge), built by tooling/mocknvml/build.sh once per machine into
`$HEADROOM_CACHE/mocknvml/<version>/lib`, with the GPU profiles the module ships copied to
`.../configs`. Nothing of it is in this repository.

The mock is configured per process: it reads the profile named by $MOCK_NVML_CONFIG when NVML is
initialised, and pynvml finds it by its name `libnvidia-ml.so.1` on LD_LIBRARY_PATH, as the NVIDIA
runtime arranges for an agent's container. So each reading runs in a subprocess (`mock_env`).

What this module relies on of the profile schema (the mock's engine/config_types.go):
`device_defaults` apply to every GPU and `devices[i]` override them per GPU (`uuid` lives only
there); `memory.{total,free,used}_bytes` are answered verbatim by nvmlDeviceGetMemoryInfo (and
`reserved_bytes` too by its v2); `processes: [{pid, type, used_memory_mib}]` are the running
processes, type "C" (or none) being the compute ones nvmlDeviceGetComputeRunningProcesses lists,
each using `used_memory_mib` MiB; `thermal.temperature_gpu_c`, `power.current_draw_mw`,
`utilization.{gpu,memory}` and `mig.mode_current` are the sensor readings, static unless a
`dynamic_metrics` block asks for drift.
"""

from __future__ import annotations

import copy
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = ROOT / "tooling" / "mocknvml" / "build.sh"
UNAVAILABLE = 3  # build.sh's exit status when the module cannot be had on this machine
LIBRARY_NAME = "libnvidia-ml.so.1"
CONFIG_ENV = "MOCK_NVML_CONFIG"
MIB = 2**20

Profile = dict[str, Any]


class MockNvmlUnavailable(Exception):
    """The mock cannot be built on this machine (its module is not served here, or no Go/gcc);
    the message is build.sh's reason."""


@dataclass(frozen=True)
class MockNvml:
    root: Path  # $HEADROOM_CACHE/mocknvml/<version>

    @property
    def library(self) -> Path:
        return self.root / "lib" / LIBRARY_NAME

    def profile_path(self, name: str) -> Path:
        """A profile the module ships, by its short name (a100, h100, ...)."""
        return self.root / "configs" / f"mock-nvml-config-{name}.yaml"


def build(timeout: float = 1500) -> MockNvml:
    """The built mock, building it first if this machine has not (a cold build downloads the
    module and compiles it with cgo). Raises MockNvmlUnavailable when it cannot be had here."""
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, check=False, timeout=timeout
    )
    if result.returncode == UNAVAILABLE:
        raise MockNvmlUnavailable(result.stderr.strip().splitlines()[-1])
    if result.returncode != 0:
        raise RuntimeError(
            f"{BUILD_SCRIPT} failed (exit {result.returncode}):\n{result.stdout}{result.stderr}"
        )
    mock = MockNvml(Path(result.stdout.strip().splitlines()[-1]))
    if not mock.library.is_file():
        raise RuntimeError(f"{BUILD_SCRIPT} reported {mock.root}, which holds no {LIBRARY_NAME}")
    return mock


def load_profile(path: Path) -> Profile:
    profile = yaml.safe_load(path.read_text())
    if not isinstance(profile, dict) or not isinstance(profile.get("devices"), list):
        raise ValueError(f"{path}: not a mock NVML profile (no devices list)")
    return profile


def write_profile(profile: Profile, path: Path) -> Path:
    path.write_text(yaml.safe_dump(profile, sort_keys=False))
    return path


def mock_env(
    mock: MockNvml, profile: Path, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of a process that loads the mock with this profile, and nothing else
    that could steer it (other MOCK_NVML_* settings, the fake library's state file)."""
    env = {
        k: v
        for k, v in (os.environ if base is None else base).items()
        if not k.startswith("MOCK_NVML_") and k != "HEADROOM_FAKE_NVML"
    }
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        p for p in (str(mock.library.parent), env.get("LD_LIBRARY_PATH", "")) if p
    )
    env[CONFIG_ENV] = str(profile)
    return env


def _device_entries(profile: Profile) -> list[dict[str, Any]]:
    devices = sorted(profile["devices"], key=lambda d: int(d["index"]))
    if [int(d["index"]) for d in devices] != list(range(len(devices))):
        raise ValueError("profile devices are not indexed 0..n-1")
    return devices


def device_config(profile: Profile, index: int) -> dict[str, Any]:
    """One GPU's configuration: the defaults with its own entry's keys over them."""
    return {**profile.get("device_defaults", {}), **_device_entries(profile)[index]}


def with_processes(profile: Profile, processes: Mapping[int, Sequence[tuple[int, int]]]) -> Profile:
    """A copy of `profile` where GPU i runs `processes[i]`, a list of (pid, MiB), compute
    processes all, and the memory they use is no longer free. Drift and failure injection are
    removed, so every reading is the profile's static value and every GPU healthy."""
    derived = copy.deepcopy(profile)
    for entry in [derived.get("device_defaults", {}), *derived["devices"]]:
        entry.pop("dynamic_metrics", None)
        entry.pop("failure", None)
    entries = _device_entries(derived)
    for index, running in processes.items():
        memory = dict(device_config(derived, index)["memory"])
        in_use = sum(mib for _, mib in running) * MIB
        reserved = int(memory.get("reserved_bytes", 0))
        total = int(memory["total_bytes"])
        if reserved + in_use > total:
            raise ValueError(f"GPU {index}: {in_use} B of processes do not fit in {total} B")
        # The profiles' convention: used_bytes is what processes use, reserved memory is neither
        # used nor free.
        memory.update(used_bytes=in_use, free_bytes=total - reserved - in_use)
        entries[index]["memory"] = memory
        entries[index]["processes"] = [
            {"pid": pid, "type": "C", "name": f"headroom-test-{pid}", "used_memory_mib": mib}
            for pid, mib in running
        ]
    return derived


@dataclass(frozen=True)
class ExpectedGpu:
    """What NVML should say about one GPU of a profile."""

    index: int
    uuid: str
    model: str
    total_bytes: int
    free_bytes: int
    processes: tuple[tuple[int, int], ...]  # (pid, bytes) of the compute processes
    utilization_percent: float | None
    memory_utilization_percent: float | None
    temperature_celsius: float | None
    power_watts: float | None
    mig_enabled: bool | None


def expected_gpus(profile: Profile) -> list[ExpectedGpu]:
    gpus = []
    for index in range(len(_device_entries(profile))):
        config = device_config(profile, index)
        if not config.get("uuid"):
            raise ValueError(f"the profile names no uuid for GPU {index}: the mock makes one up")
        memory = config["memory"]
        utilization = config.get("utilization")
        thermal = config.get("thermal")
        power = config.get("power")
        mig = config.get("mig")
        gpus.append(
            ExpectedGpu(
                index=index,
                uuid=str(config["uuid"]),
                model=str(config["name"]),
                total_bytes=int(memory["total_bytes"]),
                free_bytes=int(memory["free_bytes"]),
                processes=tuple(
                    (int(p["pid"]), int(p.get("used_memory_mib", 0)) * MIB)
                    for p in config.get("processes") or []
                    if p.get("type", "C") in ("C", "")
                ),
                utilization_percent=float(utilization.get("gpu", 0)) if utilization else None,
                memory_utilization_percent=(
                    float(utilization.get("memory", 0)) if utilization else None
                ),
                temperature_celsius=float(thermal.get("temperature_gpu_c", 0)) if thermal else None,
                power_watts=int(power.get("current_draw_mw", 0)) / 1000.0 if power else None,
                mig_enabled=mig.get("mode_current") == "enabled" if mig else None,
            )
        )
    return gpus
