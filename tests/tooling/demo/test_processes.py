"""The demo's process handling: Ctrl-C (SIGINT) and SIGTERM stop every child and its process
group, a second signal during the cleanup does not cut it short, and a killed demo takes its
children along (the parent-death signal)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.tooling.demo.procs import alive
from tests.waiting import poll

# A stand-in for the demo: a Supervisor with two children, one of which has a child of its own
# (as gunicorn has workers), the main loop in interruptible(), cleanup under shielded().
PROGRAM = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from tooling.demo.processes import Supervisor, interruptible, shielded

    work = Path(sys.argv[1])
    supervisor = Supervisor(work / "logs")
    try:
        with interruptible():
            supervisor.start("sleeper", ["sleep", "300"])
            child = f"sleep 300 & echo $! > {work}/grandchild; wait"
            supervisor.start("group", ["sh", "-c", child])
            deadline = time.monotonic() + 30
            while not (work / "grandchild").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            print(" ".join(str(c.pid) for c in supervisor.children), flush=True)
            while True:
                time.sleep(0.05)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    finally:
        with shielded():
            print("cleaning", flush=True)
            if len(sys.argv) > 2:
                time.sleep(float(sys.argv[2]))  # a slow cleanup, to be signalled during
            supervisor.stop_all(grace_seconds=5)
    print("clean", flush=True)
""")


def start(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[str], list[int]]:
    demo = subprocess.Popen(
        [sys.executable, "-c", PROGRAM, str(tmp_path), *extra], stdout=subprocess.PIPE, text=True
    )
    assert demo.stdout is not None
    pids = [int(p) for p in demo.stdout.readline().split()]
    pids.append(int((tmp_path / "grandchild").read_text()))
    assert len(pids) == 3 and all(alive(p) for p in pids)
    return demo, pids


def gone_soon(pids: list[int], timeout_seconds: float = 10.0) -> bool:
    return poll(lambda: not any(alive(p) for p in pids), timeout_seconds=timeout_seconds)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_every_child_and_its_group(tmp_path: Path, signum: int) -> None:
    demo, pids = start(tmp_path)
    demo.send_signal(signum)
    out, _ = demo.communicate(timeout=30)
    assert out.split() == ["interrupted", "cleaning", "clean"]
    assert demo.returncode == 0
    assert not [p for p in pids if alive(p)]  # stop_all waited: nothing left at exit


def test_a_second_ctrl_c_during_the_cleanup_does_not_cut_it_short(tmp_path: Path) -> None:
    demo, pids = start(tmp_path, "1.0")
    assert demo.stdout is not None
    demo.send_signal(signal.SIGINT)
    assert [demo.stdout.readline().strip() for _ in range(2)] == ["interrupted", "cleaning"]
    demo.send_signal(signal.SIGINT)  # inside the slow cleanup
    out, _ = demo.communicate(timeout=30)
    assert out.split() == ["clean"]
    assert not [p for p in pids if alive(p)]


def test_a_killed_demo_takes_its_children_along(tmp_path: Path) -> None:
    demo, pids = start(tmp_path)
    demo.kill()  # SIGKILL: no cleanup runs; the kernel's parent-death signal does the work
    demo.wait(10)
    children = pids[:2]
    assert gone_soon(children), [p for p in children if alive(p)]
    # The grandchild is not the demo's own child; the group is signalled on a clean stop only.
    # Clean it up here so the test leaves nothing behind.
    if alive(pids[2]):
        os.kill(pids[2], signal.SIGKILL)
