"""`python -m tooling.clusterctl up|down` (`make cluster-up` / `make cluster-down`): the test
control plane by hand, detached, in a directory that remembers it until `down`."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tooling.localcluster import LocalCluster, ensure_binaries
from tooling.waiting import poll

DEFAULT_DIR = Path(tempfile.gettempdir()) / "headroom-cluster"


def _up(workdir: Path) -> int:
    if (workdir / "state.json").exists():
        print(
            f"a cluster is already up; its kubeconfig: {workdir / 'admin.kubeconfig'}",
            file=sys.stderr,
        )
        return 1
    ensure_binaries()
    cluster = LocalCluster(workdir, detached=True)
    cluster.start()
    state = {name: p.popen.pid for name, p in cluster.processes.items()}
    (workdir / "state.json").write_text(json.dumps(state))
    print(cluster.kubeconfig)
    return 0


def _down(workdir: Path) -> int:
    state_file = workdir / "state.json"
    if not state_file.exists():
        print(f"no cluster is up in {workdir}", file=sys.stderr)
        return 0
    for name, pid in reversed(list(json.loads(state_file.read_text()).items())):
        _kill_if_ours(int(pid), name)
    state_file.unlink()
    print(f"stopped; files left in {workdir}")
    return 0


def _kill_if_ours(pid: int, name: str) -> None:
    try:  # the pid may have been reused since `up`: check it is still that binary
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    except OSError:
        return
    if not cmdline.endswith(name.encode()):
        return
    os.kill(pid, signal.SIGTERM)
    if not poll(
        lambda: not Path(f"/proc/{pid}").exists(), timeout_seconds=15, interval_seconds=0.1
    ):
        os.kill(pid, signal.SIGKILL)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tooling.clusterctl",
        description="Start or stop a local control plane (etcd, kube-apiserver, "
        "kube-controller-manager) on loopback; `up` prints the kubeconfig path.",
    )
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument(
        "--dir",
        type=Path,
        default=DEFAULT_DIR,
        help=f"where the cluster keeps its files (default {DEFAULT_DIR})",
    )
    args = parser.parse_args(argv)
    return _up(args.dir) if args.action == "up" else _down(args.dir)


if __name__ == "__main__":
    sys.exit(main())
