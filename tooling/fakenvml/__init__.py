"""The fake NVML library for tests and benchmarks: build it (cached), load it, and drive its state.

`build()` compiles the C sources here (`fake_nvml.c`, the NVML API and the state file;
`fake_events.c`, the event API; `json_reader.c`, a small JSON parser) with gcc into
`$HEADROOM_CACHE/fakenvml/<hash of sources and flags>/libnvidia-ml.so.1` (default cache
`~/.cache/headroom`), once per machine and again whenever the source changes; concurrent builds
are safe (each writes a temporary file and renames it into place).

Two ways to make the unmodified pynvml load it:

- In the test process, `preload()` dlopens it by absolute path before pynvml's own
  `CDLL("libnvidia-ml.so.1")`. glibc matches a later dlopen by bare name against the SONAME of
  objects already loaded (the fake's is `libnvidia-ml.so.1`), so pynvml gets this same handle.
  That is chosen for the NVML tests because setting LD_LIBRARY_PATH from inside a running process
  does nothing (glibc reads it once, at start-up) and a subprocess per test would cost seconds.
  Once loaded it stays loaded: every in-process test shares the one library, each with its own
  state file (the path is read from the environment on every call).
- For an agent run as a separate process (the e2e tests, the benchmark, `--once` tests),
  `agent_env()` puts the library's directory on LD_LIBRARY_PATH, as the NVIDIA runtime would.

The JSON state format is described at the top of `fake_nvml.c`; `FakeNvml` writes it atomically
(temporary file + rename), so the library never reads half a file.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, NotRequired, TypedDict

from tooling.localcluster import CACHE_DIR

HERE = Path(__file__).parent
SOURCES = ("fake_nvml.c", "fake_events.c", "json_reader.c")  # with fake_nvml.h, json_reader.h
HEADERS = ("fake_nvml.h", "json_reader.h")
LIBRARY_NAME = "libnvidia-ml.so.1"
STATE_ENV = "HEADROOM_FAKE_NVML"
CFLAGS = (
    "-O2",
    "-shared",
    "-fPIC",
    "-fvisibility=hidden",
    "-pthread",
    "-Wall",
    "-Wextra",
    f"-Wl,-soname,{LIBRARY_NAME}",
)
GIB = 2**30
XID_EVENT = 0x8


class FakeProcess(TypedDict):
    pid: int
    used: int | None  # None: the driver does not say (NVML_VALUE_NOT_AVAILABLE)


class FakeEvent(TypedDict):
    id: int  # delivered in id order, once per event set
    xid: int
    type: NotRequired[int]  # an NVML event type bit; default 8 (critical XID)


class FakeDevice(TypedDict, total=False):
    uuid: str
    name: str
    memory_total: int
    memory_reserved: int
    memory_used: int
    gpu_util: int
    mem_util: int
    temperature_c: int
    power_mw: int
    mig_current: int
    mig_pending: int
    supported_events: int
    processes: list[FakeProcess]
    events: list[FakeEvent]
    errors: dict[str, str | int]  # NVML function name or "*" -> error name or code


class FakeState(TypedDict, total=False):
    driver_version: str
    errors: dict[str, str | int]
    devices: list[FakeDevice]


def build(cache_dir: Path | None = None) -> Path:
    """The compiled library's path, compiling it first if this source was never built here."""
    digest_of = hashlib.sha256("\0".join(CFLAGS).encode())
    for name in (*SOURCES, *HEADERS):
        digest_of.update(name.encode() + b"\0" + (HERE / name).read_bytes())
    digest = digest_of.hexdigest()[:16]
    out_dir = (cache_dir or CACHE_DIR / "fakenvml") / digest
    library = out_dir / LIBRARY_NAME
    if library.exists():
        return library
    gcc = shutil.which("gcc")
    if gcc is None:
        raise RuntimeError(
            "gcc not found: the fake NVML library is compiled by the tests; run "
            "scripts/install-system-deps.sh (installs gcc and libc6-dev)"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".build-", suffix=".so")
    os.close(fd)
    try:
        result = subprocess.run(
            [gcc, *CFLAGS, "-o", tmp, *(str(HERE / s) for s in SOURCES)],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"compiling the fake NVML library in {HERE} failed:\n{result.stderr}"
            )
        os.replace(tmp, library)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return library


def preload(library: Path) -> ctypes.CDLL:
    """Load the fake into this process so pynvml's CDLL("libnvidia-ml.so.1") resolves to it."""
    return ctypes.CDLL(str(library.resolve()), mode=ctypes.RTLD_GLOBAL)


def agent_env(
    library: Path, state_path: Path, base: dict[str, str] | None = None
) -> dict[str, str]:
    """The environment of an agent subprocess that should load the fake with this state."""
    env = dict(os.environ if base is None else base)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        p for p in (str(library.parent), env.get("LD_LIBRARY_PATH", "")) if p
    )
    env[STATE_ENV] = str(state_path)
    return env


def device(
    index: int,
    *,
    total: int = 24 * GIB,
    used: int = 0,
    reserved: int = 0,
    processes: list[FakeProcess] | None = None,
    **extra: Any,
) -> FakeDevice:
    """A plausible GPU with every optional query supported; `extra` sets or overrides keys."""
    gpu: FakeDevice = {
        "uuid": f"GPU-{index:08x}-0000-4000-8000-{index:012x}",
        "name": "NVIDIA L4",
        "memory_total": total,
        "memory_reserved": reserved,
        "memory_used": used,
        "gpu_util": 40,
        "mem_util": 20,
        "temperature_c": 55,
        "power_mw": 72_000,
        "mig_current": 0,
        "mig_pending": 0,
        "processes": processes or [],
    }
    gpu.update(extra)  # type: ignore[typeddict-item]
    return gpu


class FakeNvml:
    """The state file of one fake node."""

    def __init__(self, path: Path, state: FakeState | None = None) -> None:
        self.path = path
        self.state: FakeState = state if state is not None else {"devices": []}
        self.write()

    def write(self, state: FakeState | None = None) -> None:
        if state is not None:
            self.state = state
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".state-")
        with os.fdopen(fd, "w") as f:
            json.dump(self.state, f)
        os.replace(tmp, self.path)

    @property
    def devices(self) -> list[FakeDevice]:
        return self.state.setdefault("devices", [])

    def update_device(self, index: int, **changes: Any) -> None:
        self.devices[index].update(changes)  # type: ignore[typeddict-item]
        self.write()

    def add_event(self, index: int, xid: int, *, event_type: int = XID_EVENT) -> None:
        events = self.devices[index].setdefault("events", [])
        next_id = 1 + max((e["id"] for d in self.devices for e in d.get("events", [])), default=0)
        events.append({"id": next_id, "xid": xid, "type": event_type})
        self.write()


def write_proc(proc_root: Path, pid: int, cgroup: str) -> None:
    """A fake `/proc/<pid>/cgroup` (for --proc-root)."""
    (proc_root / str(pid)).mkdir(parents=True, exist_ok=True)
    (proc_root / str(pid) / "cgroup").write_text(cgroup)


def pod_cgroup(uid: str, container_id: str = "ab" * 32) -> str:
    """The v2 `/proc/<pid>/cgroup` of a burstable pod's container under systemd + containerd."""
    systemd_uid = uid.replace("-", "_")
    return (
        f"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{systemd_uid}"
        f".slice/cri-containerd-{container_id}.scope\n"
    )
