"""`--device-taints` against the real kube-apiserver: a node agent (the real process, the fake NVML,
the shipped ServiceAccount, RBAC and admission policy, a token bound to an agent pod on its node)
removes a stale DeviceTaintRule left by a previous run, taints the DRA device of a GPU it finds
lost so that the stock allocator's view (`headroom.dra.tainted_gpus`) skips that GPU, and removes
the rule once the GPU is back. The admission policy lets an agent's token write only its own
node's rules."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from headroom import names
from headroom.dra import GROUP_VERSION, device_index, tainted_gpus
from kubeapi.client import ApiError, Conflict, Kube, load_api_client
from nodeagent.taints import TAINT_KEY
from tests.e2e.dra_nodes import needs_kubernetes
from tests.e2e.nodeagent_fleet import Agent, agent_pod_token, install_agent_identity
from tests.e2e.waiting import eventually
from tooling.dra import GIB, device_taint_rule, resource_slice
from tooling.fakenvml import FakeNvml, agent_env, build, device
from tooling.localcluster import LocalCluster
from tooling.process import free_port

pytestmark = needs_kubernetes(37, "DeviceTaintRules in resource.k8s.io/v1 (GA in 1.37)")

SCRIPT = Path(sys.executable).parent / "headroom"
RESOURCE = f"/apis/{GROUP_VERSION}"
RULES = f"{RESOURCE}/devicetaintrules"
SA = "system:serviceaccount:headroom-system:headroom-nodeagent"


def agent_rule(name: str, node: str, device_name: str) -> dict[str, Any]:
    """A rule as the agent of `node` would write it."""
    rule = device_taint_rule(
        name, pool=node, device=device_name, key=TAINT_KEY, value="lost", effect="NoSchedule"
    )
    rule["metadata"]["labels"] = {"headroom.dev/node": node}
    return rule


def put_fresh(
    reader: Kube, writer: Kube, name: str, change: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    """PUT the rule changed from its current version. kube-controller-manager writes a new rule's
    status a moment after it is made, so a PUT of an older version can meet a 409: read again
    and retry, as any client updating a DeviceTaintRule must."""
    deadline = time.monotonic() + 30
    while True:
        rule = reader.request("GET", f"{RULES}/{name}")
        change(rule)
        try:
            return writer.request("PUT", f"{RULES}/{name}", body=rule)
        except Conflict:
            if time.monotonic() > deadline:
                raise


class Scene:
    def __init__(self, cluster: LocalCluster, kube: Kube, node: str, agent: Agent) -> None:
        self.cluster, self.kube, self.node, self.agent = cluster, kube, node, agent

    def rule(self, name: str) -> dict[str, Any] | None:
        try:
            return self.kube.request("GET", f"{RULES}/{name}")
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def tainted(self) -> dict[str, str]:
        """GPU UUID -> taint, as the extender and the allocator see this node's devices."""
        slices = self.kube.request(
            "GET",
            f"{RESOURCE}/resourceslices",
            query={"fieldSelector": f"spec.nodeName={self.node}"},
        )["items"]
        rules = self.kube.request("GET", RULES)["items"]
        return tainted_gpus(device_index(slices).values(), rules)


@pytest.fixture(scope="module")
def scene(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    work = tmp_path_factory.mktemp("taints")
    kube = Kube(load_api_client(str(cluster.kubeconfig)))
    install_agent_identity(cluster)
    node = f"taint-{uuid.uuid4().hex[:6]}"
    kube.request(
        "POST",
        "/api/v1/nodes",
        body={"metadata": {"name": node, "labels": {names.GPU_PRESENT_NODE_LABEL: "true"}}},
    )
    state = FakeNvml(work / "nvml.json", {"devices": [device(0), device(1)]})
    published = resource_slice(node, [(d["uuid"], 24 * GIB) for d in state.devices])
    kube.request("POST", f"{RESOURCE}/resourceslices", body=published)
    # What a previous run left: a rule on GPU 0, which is healthy now.
    kube.request("POST", RULES, body=agent_rule(f"headroom-{node}-gpu-0", node, "gpu-0"))
    kubeconfig = cluster.token_kubeconfig(
        work / "agent.kubeconfig", agent_pod_token(cluster, kube, node), user="nodeagent"
    )
    port = free_port()
    log_path = work / "agent.log"
    with log_path.open("wb") as log:
        popen = subprocess.Popen(
            [
                str(SCRIPT),
                "nodeagent",
                f"--node-name={node}",
                f"--kubeconfig={kubeconfig}",
                "--interval-seconds=1",
                "--heartbeat-seconds=3",
                f"--proc-root={work}",
                f"--metrics-bind=127.0.0.1:{port}",
                "--device-taints=NoSchedule",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=agent_env(build(), state.path),
        )
    agent = Agent(node, state, port, log_path, popen)
    try:
        yield Scene(cluster, kube, node, agent)
    finally:
        agent.stop()
        cluster.kubectl("delete", "node", node, "--wait=false", check=False)
        cluster.kubectl(
            "delete", "resourceslice", f"{node}-gpu.nvidia.com", "--wait=false", check=False
        )
        cluster.kubectl(
            "delete", "devicetaintrules", "-l", f"headroom.dev/node={node}", check=False
        )
        cluster.kubectl(
            "delete",
            "pod",
            "-n",
            names.SYSTEM_NAMESPACE,
            f"headroom-nodeagent-{node}",
            "--wait=false",
            "--ignore-not-found",
            check=False,
        )


def test_a_stale_rule_is_removed_at_start(scene: Scene) -> None:
    eventually(
        lambda: scene.rule(f"headroom-{scene.node}-gpu-0") is None,
        what="the rule a previous run left on a healthy GPU removed",
    )
    assert scene.tainted() == {}
    assert scene.agent.alive(), scene.agent.log_tail()
    assert scene.agent.metric("headroom_nodeagent_device_taints") == 0


def test_a_lost_gpu_is_tainted_for_the_allocator_and_untainted_when_back(scene: Scene) -> None:
    name = f"headroom-{scene.node}-gpu-1"
    lost_uuid = scene.agent.state.devices[1]["uuid"]
    scene.agent.state.update_device(1, errors={"*": "GPU_IS_LOST"})
    eventually(lambda: scene.rule(name) is not None, what="the lost GPU's device tainted")
    rule = scene.rule(name)
    assert rule is not None
    assert rule["metadata"]["labels"] == {
        "headroom.dev/node": scene.node,
        "app.kubernetes.io/managed-by": "headroom-nodeagent",
    }
    assert rule["spec"]["deviceSelector"] == {
        "driver": "gpu.nvidia.com",
        "pool": scene.node,
        "device": "gpu-1",
    }
    taint = rule["spec"]["taint"]
    assert (taint["key"], taint["value"], taint["effect"]) == (TAINT_KEY, "lost", "NoSchedule")
    assert scene.tainted() == {lost_uuid: f"{TAINT_KEY}=lost:NoSchedule"}
    eventually(
        lambda: scene.agent.metric("headroom_nodeagent_device_taints") == 1,
        what="the gauge counting the rule",
    )
    scene.agent.state.update_device(1, errors={})  # the GPU comes back after a reset
    eventually(lambda: scene.rule(name) is None, what="the rule removed once the GPU is back")
    assert scene.tainted() == {}
    assert scene.agent.metric("headroom_nodeagent_device_taint_errors_total") == 0
    assert scene.agent.alive(), scene.agent.log_tail()


def test_the_rbac_allows_the_agent_its_dra_reads_and_writes_and_nothing_more(
    scene: Scene,
) -> None:
    def can(*args: str) -> str:
        return scene.cluster.kubectl(
            "auth", "can-i", *args, f"--as={SA}", check=False
        ).stdout.strip()

    assert can("list", "resourceslices.resource.k8s.io") == "yes"
    for verb in ("get", "list", "create", "update", "delete"):
        assert can(verb, "devicetaintrules.resource.k8s.io") == "yes", verb
    for verb, resource in [
        ("watch", "resourceslices.resource.k8s.io"),
        ("get", "resourceslices.resource.k8s.io"),
        ("create", "resourceslices.resource.k8s.io"),
        ("patch", "devicetaintrules.resource.k8s.io"),
        ("watch", "devicetaintrules.resource.k8s.io"),
        ("deletecollection", "devicetaintrules.resource.k8s.io"),
        ("list", "resourceclaims.resource.k8s.io"),
    ]:
        assert can(verb, resource) == "no", (verb, resource)


def test_an_agents_token_writes_only_its_own_nodes_rules(scene: Scene, tmp_path: Path) -> None:
    # A token bound to an agent pod on a node of its own (no agent runs there, so nothing else
    # writes its rules meanwhile); `other` is a node with no agent either.
    mine, other = f"{scene.node}-p", f"{scene.node}-other"
    scene.kube.request("POST", "/api/v1/nodes", body={"metadata": {"name": mine}})
    token = agent_pod_token(scene.cluster, scene.kube, mine)
    as_agent = Kube(
        load_api_client(
            str(scene.cluster.token_kubeconfig(tmp_path / "a.kubeconfig", token, user="agent"))
        )
    )
    # Another node's rule, made by an administrator: the agent may not remove or take it over.
    theirs = agent_rule(f"headroom-{other}-gpu-0", other, "gpu-0")
    scene.kube.request("POST", RULES, body=theirs)
    try:

        def refused(body: dict[str, Any]) -> str:
            try:
                as_agent.request("POST", RULES, body=body)
            except ApiError as exc:
                return str(exc) if exc.status == 403 else ""
            as_agent.request("DELETE", f"{RULES}/{body['metadata']['name']}")
            return ""

        forged = agent_rule(f"headroom-{other}-gpu-1", other, "gpu-1")
        # The policy takes effect a moment after it is applied.
        eventually(lambda: bool(refused(forged)), what="a rule named for another node refused")
        assert (
            f"the node agent on node {mine} may write only DeviceTaintRules named "
            f"headroom-{mine}-..., not headroom-{other}-gpu-1"
        ) in refused(forged)
        mislabelled = agent_rule(f"headroom-{mine}-gpu-7", other, "gpu-7")
        assert f"labelled headroom.dev/node={mine}, not '{other}'" in refused(mislabelled)
        with pytest.raises(ApiError) as info:
            as_agent.request("DELETE", f"{RULES}/headroom-{other}-gpu-0")
        assert info.value.status == 403 and "may write only DeviceTaintRules" in str(info.value)
        # Named for its node but labelled for another by someone else: not its to take over.
        squatted = agent_rule(f"headroom-{mine}-gpu-8", other, "gpu-8")
        scene.kube.request("POST", RULES, body=squatted)

        def relabel(rule: dict[str, Any]) -> None:
            rule["metadata"]["labels"] = {"headroom.dev/node": mine}

        with pytest.raises(ApiError) as info:
            put_fresh(scene.kube, as_agent, f"headroom-{mine}-gpu-8", relabel)
        assert info.value.status == 403 and "may not take over" in str(info.value)
        scene.kube.request("DELETE", f"{RULES}/headroom-{mine}-gpu-8")
        # Its own node's rule: created, updated and deleted.
        as_agent.request("POST", RULES, body=agent_rule(f"headroom-{mine}-gpu-7", mine, "gpu-7"))

        def xid(rule: dict[str, Any]) -> None:
            rule["spec"]["taint"]["value"] = "xid-79"

        put_fresh(scene.kube, as_agent, f"headroom-{mine}-gpu-7", xid)
        as_agent.request("DELETE", f"{RULES}/headroom-{mine}-gpu-7")
        assert scene.rule(f"headroom-{other}-gpu-0") is not None
    finally:
        scene.kube.request("DELETE", f"{RULES}/headroom-{other}-gpu-0")
        scene.cluster.kubectl("delete", "node", mine, "--wait=false", check=False)
        scene.cluster.kubectl(
            "delete",
            "pod",
            "-n",
            names.SYSTEM_NAMESPACE,
            f"headroom-nodeagent-{mine}",
            "--wait=false",
            "--ignore-not-found",
            check=False,
        )
    assert scene.agent.alive(), scene.agent.log_tail()
