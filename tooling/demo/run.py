"""Running the demo from start to summary: bring the platform and the nodes up, tell the story,
then stop everything it started, whatever happened (an error, Ctrl-C, SIGTERM), and judge.

Order of teardown: the simulated kubelet and model servers (threads), Headroom's processes and
the headroom kube-scheduler (SIGTERM to each process group, then SIGKILL), the control plane.
The summary's events are read before the control plane goes.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from headroom import names
from kubeapi.client import ApiError, Kube, load_api_client
from tooling.demo import dra
from tooling.demo.kubelet import Kubelet, LoadBoard
from tooling.demo.model import Scenario
from tooling.demo.nodes import (
    NodeError,
    SimNode,
    agent_argv,
    agent_env,
    fake_nvml_library,
    register_node,
)
from tooling.demo.objects import deploy
from tooling.demo.platform import Platform, PlatformError, start_control_plane, wait_until
from tooling.demo.processes import Supervisor, interruptible, shielded
from tooling.demo.scenario import ScenarioError, load
from tooling.demo.story import Story
from tooling.demo.summary import Record, build_summary, render, write_json
from tooling.demo.view import Display
from tooling.localcluster import ensure_binaries
from tooling.process import ClusterError, free_port

WORKDIR_ENV = "HEADROOM_DEMO_WORKDIR"
AGENT_INTERVAL_SECONDS = 1.0  # the DaemonSet says 5; a demo wants to see changes sooner


@dataclass
class Options:
    scenario: Path
    summary_json: Path | None = None
    workdir: Path | None = None
    live: bool = False
    out: TextIO = sys.stdout


@dataclass
class Run:
    """What one run started, for the teardown and the summary."""

    scenario: Scenario
    workdir: Path
    display: Display
    supervisor: Supervisor
    platform: Platform | None = None
    kubelet: Kubelet | None = None
    story: Story | None = None

    def check_children(self) -> None:
        for child in self.supervisor.dead():
            raise PlatformError(
                f"{child.name} exited unexpectedly; its log {child.log_path}:\n{child.log_tail()}"
            )

    def processes(self) -> list[dict[str, Any]]:
        out = [{"name": c.name, "pid": c.pid} for c in self.supervisor.children]
        if self.platform is not None:
            out += [
                {"name": n, "pid": p.popen.pid} for n, p in self.platform.cluster.processes.items()
            ]
        return out


def run_demo(options: Options) -> int:
    try:
        scenario = load(options.scenario)
    except (ScenarioError, OSError) as exc:
        print(f"demo: error: {options.scenario}: {exc}", file=sys.stderr)
        return 2
    problem = _check_paths(options)
    if problem:
        print(f"demo: error: {problem}", file=sys.stderr)
        return 2
    own_workdir = options.workdir is None
    workdir = options.workdir or Path(tempfile.mkdtemp(prefix="headroom-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    # Every process the demo starts inherits this, so whatever outlived it could be found.
    os.environ[WORKDIR_ENV] = str(workdir.resolve())
    run = Run(
        scenario,
        workdir,
        Display(options.out, scenario, live=options.live),
        Supervisor(workdir / "logs"),
    )
    record = Record(model=scenario.model.name, max_replicas=scenario.scaler.max_replicas)
    began = time.monotonic()
    interrupted, error = False, ""
    events: list[dict[str, Any]] = []
    pending: list[str] = []
    processes: list[dict[str, Any]] = []
    try:
        with interruptible():
            _bring_up(run, record)
            assert run.story is not None
            run.story.run()
    except KeyboardInterrupt:
        interrupted = True
    except (PlatformError, ClusterError, NodeError, ApiError, OSError) as exc:
        error = str(exc)
    finally:
        with shielded():
            processes = run.processes()
            if run.platform is not None:
                events, pending = _collect(run.platform.kube, scenario)
            _tear_down(run)
    if run.story is not None:
        run.display.final(run.story.last)
    summary = build_summary(
        record,
        scenario=scenario.name,
        expect_cap=scenario.expect.cap_reached,
        expect_lift=scenario.expect.cap_lifted,
        events=events,
        pending=pending,
        wall_seconds=time.monotonic() - began,
        processes=processes,
        workdir=workdir,
        interrupted=interrupted or bool(error),
    )
    run.display.message("")
    run.display.message(render(summary))
    if error:
        run.display.message(f"\nerror: {error}")
    if interrupted:
        run.display.message("\ninterrupted: everything the demo started has been stopped")
    if options.summary_json is not None:
        write_json(summary, options.summary_json)
    if summary.passed and own_workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    elif not summary.passed:
        run.display.message(f"logs and state kept in {workdir}")
    return 130 if interrupted else 0 if summary.passed else 1


def _check_paths(options: Options) -> str | None:
    """Refuse what would fail only at the end (the summary's directory) or mix two runs (a used
    working directory: its etcd data would bring the last run's objects back)."""
    if options.summary_json is not None and not options.summary_json.parent.is_dir():
        return (
            f"--summary-json: the directory {options.summary_json.parent} does not exist "
            "(expected a file path in an existing directory)"
        )
    workdir = options.workdir
    if (
        workdir is not None
        and workdir.exists()
        and (not workdir.is_dir() or any(workdir.iterdir()))
    ):
        return f"--workdir: {workdir} is not an empty directory (expected a new or empty one)"
    return None


def _bring_up(run: Run, record: Record) -> None:
    scenario, say = run.scenario, run.display.message
    say(
        f"demo: scenario {scenario.name} ({len(scenario.node_names())} simulated "
        f"nodes), working in {run.workdir}"
    )
    ensure_binaries()
    library = fake_nvml_library()
    say("starting the control plane: etcd, kube-apiserver, kube-controller-manager ...")
    run.platform = platform = start_control_plane(run.workdir, run.supervisor)
    say("installing CRDs, namespace, ServiceAccounts and RBAC from manifests/ ...")
    platform.install()
    say("starting headroom webhook (TLS, generated CA) and registering it ...")
    platform.start_webhook()
    platform.create_namespace(scenario.namespace)
    platform.await_mutation(scenario.namespace)
    say("starting kube-scheduler (profile headroom) and headroom extender ...")
    platform.start_scheduler()
    platform.start_extender()
    nodes = _start_nodes(run, platform, library)
    if scenario.uses_dra:
        say(
            "publishing the DRA nodes' GPUs as ResourceSlices (the demo as NVIDIA's DRA driver) ..."
        )
        dra.install(platform.kube, nodes.values())
    run.check_children()
    board = LoadBoard()
    kube = Kube(load_api_client(str(platform.kubeconfig)))
    run.kubelet = Kubelet(Kube(load_api_client(str(platform.kubeconfig))), nodes, board)
    run.kubelet.start()
    say("deploying the workloads, the model and its AIScaler; the story begins")
    deploy(kube, scenario, workloads=True, model=True)
    run.story = Story(
        kube=kube,
        scenario=scenario,
        kubelet=run.kubelet,
        board=board,
        nodes=nodes,
        record=record,
        show=run.display.show,
        health=run.check_children,
        tell=run.display.note,
    )


def _start_nodes(run: Run, platform: Platform, library: Path) -> dict[str, SimNode]:
    scenario = run.scenario
    run.display.message(
        f"starting {len(scenario.node_names())} simulated GPU nodes, one "
        "headroom nodeagent each (fake NVML) ..."
    )
    nodes: dict[str, SimNode] = {}
    for group in scenario.nodes:
        for name in group.node_names():
            node = SimNode(name, group, run.workdir / "nodes" / name)
            register_node(platform.kube, node)
            run.supervisor.start(
                f"nodeagent-{name}",
                agent_argv(
                    node,
                    kubeconfig=platform.agent_kubeconfig(name),
                    metrics_port=free_port(),
                    interval_seconds=AGENT_INTERVAL_SECONDS,
                ),
                env=agent_env(node, library),
            )
            nodes[name] = node
    path = f"/apis/{names.GROUP_VERSION}/{names.GPUNODE_PLURAL}"

    def reported() -> bool:
        run.check_children()
        items = platform.kube.request("GET", path)["items"]
        return {
            o["metadata"]["name"] for o in items if (o.get("status") or {}).get("gpuCount")
        } >= set(nodes)

    wait_until(reported, what="every node agent's first GPUNode report", timeout_seconds=90)
    return nodes


def _collect(kube: Kube, scenario: Scenario) -> tuple[list[dict[str, Any]], list[str]]:
    """The namespace's events, and the pods still unplaced, while the API server is up."""
    try:
        events: list[dict[str, Any]] = kube.request(
            "GET", f"/api/v1/namespaces/{scenario.namespace}/events"
        )["items"]
        pods = kube.request("GET", f"/api/v1/namespaces/{scenario.namespace}/pods")["items"]
    except ApiError:
        return [], []
    events.sort(key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))
    pending = [
        p["metadata"]["name"]
        for p in pods
        if not (p.get("spec") or {}).get("nodeName") and not p["metadata"].get("deletionTimestamp")
    ]
    return events, pending


def _tear_down(run: Run) -> None:
    if run.kubelet is not None:
        run.kubelet.stop()
    run.supervisor.stop_all()
    if run.platform is not None:
        run.platform.cluster.stop()
