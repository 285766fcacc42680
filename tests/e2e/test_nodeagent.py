"""Three node agents as real processes (`headroom nodeagent`, the fake NVML on LD_LIBRARY_PATH)
against the real kube-apiserver, writing with the ServiceAccount, RBAC and admission policy of
manifests/nodeagent/, each with a token bound to an agent pod on its node (as the DaemonSet's
projected token is): they publish owned GPUNodes that `kubectl get gpunodes` shows, no agent can
write another node's GPUNode, a GPU lost mid-run shows as unhealthy within one interval, the
agents ride out a 20 s API server outage and publish the next change, and a deleted Node takes its
GPUNode with it."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from headroom import names
from headroom.clock import parse_time
from kubeapi.client import ApiError, Kube, load_api_client
from tests.e2e.nodeagent_fleet import (
    GPUNODES,
    MANIFESTS,
    Agent,
    Fleet,
    agent_pod_token,
    install_agent_identity,
    node_state,
)
from tests.e2e.waiting import eventually
from tooling.fakenvml import GIB, FakeNvml, agent_env, build, pod_cgroup, write_proc
from tooling.localcluster import LocalCluster
from tooling.process import free_port

SCRIPT = Path(sys.executable).parent / "headroom"
INTERVAL_SECONDS = 1.0
OUTAGE_SECONDS = 20.0
SA = "system:serviceaccount:headroom-system:headroom-nodeagent"
POD_UIDS = [f"7e57a9e0-0000-4000-8000-00000000000{i}" for i in range(3)]


@pytest.fixture(scope="module")
def fleet(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    work = tmp_path_factory.mktemp("nodeagents")
    kube = Kube(load_api_client(str(cluster.kubeconfig)))
    install_agent_identity(cluster)
    library = build()
    prefix = f"gpu-{uuid.uuid4().hex[:6]}"
    proc_root = work / "proc"
    for i, uid in enumerate(POD_UIDS):
        write_proc(proc_root, 5000 + i, pod_cgroup(uid))
    agents: list[Agent] = []
    try:
        for i in range(3):
            node = f"{prefix}-{i}"
            kube.request(
                "POST",
                "/api/v1/nodes",
                body={"metadata": {"name": node, "labels": {names.GPU_PRESENT_NODE_LABEL: "true"}}},
            )
            kubeconfig = cluster.token_kubeconfig(
                work / f"{node}.kubeconfig", agent_pod_token(cluster, kube, node), user="nodeagent"
            )
            state = FakeNvml(work / f"{node}.json", {"devices": node_state(i)})
            port = free_port()
            log_path = work / f"{node}.log"
            with log_path.open("wb") as log:
                popen = subprocess.Popen(
                    [
                        str(SCRIPT),
                        "nodeagent",
                        "--node-name",
                        node,
                        "--kubeconfig",
                        str(kubeconfig),
                        "--interval-seconds",
                        str(INTERVAL_SECONDS),
                        "--proc-root",
                        str(proc_root),
                        "--metrics-bind",
                        f"127.0.0.1:{port}",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=agent_env(library, state.path),
                )
            agents.append(Agent(node, state, port, log_path, popen))
        yield Fleet(kube, agents, proc_root)
    finally:
        for agent in agents:
            agent.stop()
        for agent in agents:
            cluster.kubectl("delete", "node", agent.node, "--wait=false", check=False)
            cluster.kubectl(
                "delete",
                "pod",
                "-n",
                names.SYSTEM_NAMESPACE,
                f"headroom-nodeagent-{agent.node}",
                f"probe-{agent.node}",
                "--wait=false",
                "--ignore-not-found",
                check=False,
            )


def test_each_agent_publishes_its_owned_gpunode(cluster: LocalCluster, fleet: Fleet) -> None:
    nodes = [a.node for a in fleet.agents]
    eventually(
        lambda: all(fleet.status(n).get("gpuCount") == 2 for n in nodes),
        what="three published GPUNodes",
    )
    for i, node in enumerate(nodes):
        obj = fleet.gpunode(node)
        assert obj is not None
        node_uid = fleet.kube.request("GET", f"/api/v1/nodes/{node}")["metadata"]["uid"]
        assert obj["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "v1",
                "kind": "Node",
                "name": node,
                "uid": node_uid,
                "controller": False,
                "blockOwnerDeletion": False,
            }
        ]
        assert obj["spec"] == {"nodeName": node}
        status = obj["status"]
        assert (status["healthy"], status["healthyGPUs"]) == (True, 2)
        assert status["gpus"][0]["pods"] == [
            {"uid": POD_UIDS[i], "namespace": "", "name": "", "usedBytes": 5 * GIB}
        ]
        assert status["gpus"][0]["unattributedBytes"] == GIB
    table = cluster.kubectl("get", "gpunodes", *nodes).stdout.splitlines()
    assert table[0].split() == ["NAME", "GPUS", "HEALTHY", "FREE", "LARGEST-FREE", "REPORTED"]
    assert sorted(row.split()[:5] for row in table[1:]) == [
        [n, "2", "2", "42Gi", "24Gi"] for n in nodes
    ]
    for agent in fleet.agents:
        assert agent.get("/healthz")[0] == 200, agent.get("/healthz")


def test_the_rbac_allows_the_agent_its_gpunodes_and_nothing_more(
    cluster: LocalCluster, fleet: Fleet
) -> None:
    def can(*args: str) -> str:
        return cluster.kubectl("auth", "can-i", *args, f"--as={SA}", check=False).stdout.strip()

    assert can("patch", "gpunodes.headroom.dev", "--subresource=status") == "yes"
    assert can("create", "gpunodes.headroom.dev") == "yes"
    assert can("get", "nodes") == "yes"
    for verb, resource in [
        ("delete", "gpunodes.headroom.dev"),
        ("list", "nodes"),
        ("list", "pods"),
        ("get", "secrets"),
        ("update", "nodes"),
        ("create", "aiscalers.headroom.dev"),
    ]:
        assert can(verb, resource, "--all-namespaces") == "no", (verb, resource)
    # The DaemonSet as shipped passes the API server's validation.
    cluster.kubectl("apply", "--dry-run=server", "-f", str(MANIFESTS / "daemonset.yaml"))


def test_an_agents_token_writes_only_its_own_nodes_gpunode(
    cluster: LocalCluster, fleet: Fleet, tmp_path: Path
) -> None:
    mine, other = fleet.agents[0].node, fleet.agents[1].node
    eventually(
        lambda: fleet.gpunode(mine) is not None and fleet.gpunode(other) is not None,
        what="both GPUNodes published",
    )
    # A second agent pod on the same node, as after a DaemonSet rollout: its own token.
    token = agent_pod_token(cluster, fleet.kube, mine, pod_name=f"probe-{mine}")
    as_agent = Kube(
        load_api_client(
            str(cluster.token_kubeconfig(tmp_path / "a.kubeconfig", token, user="agent"))
        )
    )

    def write_status(node: str) -> None:
        obj = as_agent.request("GET", f"{GPUNODES}/{node}")
        as_agent.request("PUT", f"{GPUNODES}/{node}/status", body=obj)

    def refused_on_other() -> bool:  # the policy takes effect a moment after it is applied
        try:
            write_status(other)
        except ApiError as exc:
            return exc.status == 403
        return False

    eventually(refused_on_other, what="the agent on one node refused on another's GPUNode")
    with pytest.raises(ApiError) as info:
        write_status(other)
    assert (
        f"the node agent on node {mine} may write only GPUNode {mine}, not GPUNode {other}"
        in str(info.value)
    )
    write_status(mine)  # its own: accepted
    with pytest.raises(ApiError) as info:
        as_agent.request(
            "POST",
            GPUNODES,
            body={
                "apiVersion": names.GROUP_VERSION,
                "kind": names.GPUNODE_KIND,
                "metadata": {"name": f"{other}-forged"},
                "spec": {"nodeName": other},
            },
        )
    assert info.value.status == 403 and "may write only GPUNode" in str(info.value)
    # A token of the same account bound to no pod names no node: refused, saying why.
    unbound = Kube(
        load_api_client(
            str(
                cluster.token_kubeconfig(
                    tmp_path / "u.kubeconfig",
                    cluster.service_account_token(names.SYSTEM_NAMESPACE, "headroom-nodeagent"),
                    user="unbound",
                )
            )
        )
    )
    with pytest.raises(ApiError) as info:
        obj = unbound.request("GET", f"{GPUNODES}/{mine}")
        unbound.request("PUT", f"{GPUNODES}/{mine}/status", body=obj)
    assert "the node agent's token names no node" in str(info.value)


def test_a_gpu_lost_mid_run_shows_unhealthy_within_one_interval(fleet: Fleet) -> None:
    agent = fleet.agents[0]
    eventually(lambda: fleet.status(agent.node).get("healthyGPUs") == 2, what="a healthy start")
    lost_at = time.time()
    agent.state.update_device(1, errors={"*": "GPU_IS_LOST"})
    eventually(
        lambda: fleet.status(agent.node).get("healthyGPUs") == 1, what="the lost GPU reported"
    )
    status = fleet.status(agent.node)
    gpu = status["gpus"][1]
    assert (gpu["healthy"], gpu["reason"]) == (False, "GPU is lost (nvmlDeviceGetHandleByIndex)")
    assert gpu["uuid"] == agent.state.devices[1]["uuid"]  # still named, from its last reading
    # The report is from the first sample after the loss: one interval, plus 1 s for the
    # scheduling of a loaded machine (reportTime is whole seconds, rounded down).
    assert parse_time(status["reportTime"], field="reportTime") <= lost_at + INTERVAL_SECONDS + 1
    assert agent.metric("headroom_gpu_healthy", gpu="1", uuid=gpu["uuid"]) == 0.0
    assert agent.metric("headroom_gpu_healthy", gpu="0") == 1.0
    agent.state.update_device(1, errors={})  # the GPU comes back after a reset
    eventually(lambda: fleet.status(agent.node).get("healthyGPUs") == 2, what="recovery")


def test_agents_ride_out_an_api_server_outage(cluster: LocalCluster, fleet: Fleet) -> None:
    outage_agent, later_agent = fleet.agents[1], fleet.agents[2]
    errors_before = outage_agent.metric("headroom_nodeagent_publish_errors_total")
    cluster.stop_apiserver()
    try:
        # A change while the API server is down: it cannot be written yet.
        outage_agent.state.update_device(0, memory_used=14 * GIB)
        deadline = time.monotonic() + OUTAGE_SECONDS  # the outage lasts this long, by design
        while time.monotonic() < deadline:
            assert all(a.alive() for a in fleet.agents), fleet.logs()
            time.sleep(0.5)
        assert outage_agent.metric("headroom_nodeagent_publish_errors_total") > errors_before
        assert outage_agent.get("/livez")[0] == 200  # sampling went on
    finally:
        cluster.start_apiserver()
    assert all(a.alive() for a in fleet.agents), fleet.logs()
    eventually(
        lambda: (
            fleet.status(outage_agent.node).get("largestFree") == "24Gi"
            and fleet.status(outage_agent.node)["gpus"][0]["usedBytes"] == 14 * GIB
        ),
        timeout_seconds=60,
        what="the change made during the outage published",
    )
    later_agent.state.update_device(0, memory_used=20 * GIB)
    eventually(
        lambda: fleet.status(later_agent.node)["gpus"][0]["usedBytes"] == 20 * GIB,
        timeout_seconds=30,
        what="the next change published",
    )
    assert outage_agent.get("/healthz")[0] == 200


def test_deleting_a_node_removes_its_gpunode_and_agents_stop_cleanly(fleet: Fleet) -> None:
    agent = fleet.agents[2]
    assert fleet.gpunode(agent.node) is not None
    assert agent.stop() == 0, agent.log_tail()  # SIGTERM: a clean exit
    fleet.kube.request("DELETE", f"/api/v1/nodes/{agent.node}")
    # The garbage collector follows the owner reference (it may first need to discover the
    # GPUNode resource, which it does every 30 s).
    eventually(
        lambda: fleet.gpunode(agent.node) is None,
        timeout_seconds=90,
        interval_seconds=0.5,
        what="the GPUNode garbage-collected with its Node",
    )
    for other in fleet.agents[:2]:
        assert other.stop() == 0, other.log_tail()
