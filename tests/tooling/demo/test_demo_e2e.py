"""The demo itself, as `make demo` runs it, on the short scenario: the story's summary holds
(every placement fits, the GPU cap was reached and lifted, a claim pod holds a GPU of the DRA node
and the other is refused by live memory), it exits 0, and nothing it started is left running;
Ctrl-C in the middle of the story stops everything too.

The demo starts its own control plane (a fresh etcd, kube-apiserver and kube-controller-manager
on free ports, in its own directory), so it shares nothing with the e2e session's cluster.
"""

from __future__ import annotations

import contextlib
import json
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.tooling.demo.procs import alive, carrying
from tooling.demo.nodes import gpu_uuid
from tooling.demo.scenario import SCENARIOS_DIR

ROOT = Path(__file__).resolve().parents[3]
DEMO = [sys.executable, "-m", "tooling.demo"]  # as `make demo` runs it
SHORT = SCENARIOS_DIR / "short.yaml"


def nothing_left(workdir: Path, pids: list[int], timeout_seconds: float = 20.0) -> list[str]:
    """What still runs of the demo's processes (by pid, and by the workdir every one carries)."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        left = carrying(str(workdir.resolve())) + [
            str(p) for p in pids if alive(p) and carrying_pid(p, workdir)
        ]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def carrying_pid(pid: int, workdir: Path) -> bool:
    try:
        return str(workdir.resolve()).encode() in Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False


def test_the_short_story_holds_and_leaves_nothing_behind(tmp_path: Path) -> None:
    workdir, summary_path = tmp_path / "work", tmp_path / "summary.json"
    result = subprocess.run(
        [
            *DEMO,
            "--scenario",
            str(SHORT),
            "--workdir",
            str(workdir),
            "--summary-json",
            str(summary_path),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=ROOT,
    )
    print(result.stdout[-6000:], result.stderr[-3000:])  # shown when the test fails
    assert result.returncode == 0
    summary = json.loads(summary_path.read_text())
    assert summary["passed"] is True
    assert summary["overcommits"] == 0 and summary["overcommitDetails"] == []
    assert summary["capReached"] is True
    assert summary["cap"] == 3  # the A100's GPUs 1-3; GPU 0 is held outside Kubernetes
    assert "3 fit" in summary["capMessage"] and "need 40Gi on 1 GPU" in summary["capMessage"]
    assert summary["capLifted"] is True and summary["liftedTo"] == 4  # GPU 0 freed
    assert summary["peakReplicas"] <= summary["maxReplicas"] == 6
    # The DRA node's GPUs are not the model's: its cap is the A100's alone.
    assert summary["placedByApp"] == {"embedder": 2, "llm-server": 4, "reranker": 1}
    # One reranker holds GPU 0 of the DRA node through its claim; the allocator's only choice for
    # the other, GPU 1, has 20Gi free (a notebook holds 60Gi): refused, and still pending.
    (held,) = summary["draClaims"]
    assert (held["node"], held["gpu"], held["uuid"]) == ("h100-dra", 0, gpu_uuid("h100-dra", 0))
    assert held["claim"].startswith(held["pod"]) and held["pod"].startswith("reranker-")
    assert any(
        "needs 30Gi" in r["message"] and gpu_uuid("h100-dra", 1) in r["message"]
        for r in summary["refusedReasons"]
    ), summary["refusedReasons"]
    assert any(p.startswith("reranker-") for p in summary["stillPending"])
    # The batch job wants 20Gi of an L4: GPU 1 is lost and the embedders leave 8Gi on GPU 0.
    assert summary["podsRefused"] >= 1
    assert any(
        "needs 20Gi on 1 GPU; best free 8Gi on GPU 0" in r["message"]
        for r in summary["refusedReasons"]
    ), summary["refusedReasons"]
    assert [p["name"] for p in summary["phases"]] == ["start", "rise", "frees", "fall"]
    assert all(p["ok"] for p in summary["phases"])
    assert any(e.startswith("ScalingLimited: wanted 5, 3 fit") for e in summary["scalerEvents"])
    assert "PASSED" in result.stdout and "overcommits      0" in result.stdout
    started = [p["name"] for p in summary["processes"]]
    assert {
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "extender",
        "webhook",
        "nodeagent-a100",
        "nodeagent-l4-lost",
        "nodeagent-h100-dra",
    } <= set(started)
    assert nothing_left(workdir, [p["pid"] for p in summary["processes"]]) == []


def test_ctrl_c_during_the_story_stops_everything(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    demo = subprocess.Popen(
        [*DEMO, "--scenario", str(SHORT), "--workdir", str(workdir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert demo.stdout is not None

    def read() -> None:
        for line in demo.stdout or []:
            lines.put(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    seen: list[str] = []
    deadline = time.monotonic() + 180
    while not any(line.startswith("[") for line in seen):  # the story's first progress line
        assert demo.poll() is None, "".join(seen)
        assert time.monotonic() < deadline, "".join(seen)
        with contextlib.suppress(queue.Empty):
            seen.append(lines.get(timeout=1))
    assert carrying(str(workdir.resolve())), "the demo's processes run before Ctrl-C"
    demo.send_signal(signal.SIGINT)
    assert demo.wait(90) == 130
    reader.join(10)
    rest = []
    while not lines.empty():
        rest.append(lines.get())
    assert "everything the demo started has been stopped" in "".join(rest)
    assert nothing_left(workdir, []) == []
