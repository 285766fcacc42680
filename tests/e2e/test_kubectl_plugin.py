"""`kubectl headroom ...` through the real kubectl binary (the plugin found on PATH) against the
real control plane with the headroom scheduler and extender running (tests/e2e/stack.py).

A pod that fits nowhere gets, node by node, the reasons the running extender's /filter gives
for the same pod; a pod the scheduler placed is said to be bound, with its GPU; `top` and
`status` answer; the kubeconfig's context picks the cluster and the default namespace; no
permission and no cluster are errors that say what is missing.
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cli.plugin import env_with, plugin_dir
from tests.e2e.stack import Stack, eventually, running_stack
from tooling.localcluster import BIN_DIR, LocalCluster
from tooling.process import free_port

KUBECTL = BIN_DIR / "kubectl"
STALENESS = "--staleness-seconds=600"  # the stack's extender runs with this limit


@pytest.fixture(scope="module")
def stack(cluster: LocalCluster) -> Iterator[Stack]:
    with running_stack(cluster) as s:
        yield s


@pytest.fixture
def env(tmp_path: Path, cluster: LocalCluster) -> dict[str, str]:
    """The plugin first on PATH, and the cluster's kubeconfig in KUBECONFIG (as a user has it)."""
    return env_with(plugin_dir(tmp_path)) | {"KUBECONFIG": str(cluster.kubeconfig)}


def kubectl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KUBECTL), *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def extender_filter(stack: Stack, namespace: str, name: str, nodes: list[str]) -> dict[str, Any]:
    """What the running extender's /filter answers for the pod on these nodes now."""
    pod = stack.kube.request("GET", f"/api/v1/namespaces/{namespace}/pods/{name}")
    request = urllib.request.Request(
        f"http://127.0.0.1:{stack.port}/filter",
        data=json.dumps({"Pod": pod, "NodeNames": nodes}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, Any] = json.loads(response.read())
    return answer


def same_age(reason: str) -> str:
    """The reason with a report's age in whole seconds left out: the two answers are a moment
    apart, and a stale report is a second older in the later one."""
    return re.sub(r"GPU report \d+s old", "GPU report Ns old", reason)


def rejected(stack: Stack, namespace: str, name: str) -> bool:
    pod = stack.kube.request("GET", f"/api/v1/namespaces/{namespace}/pods/{name}")
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "PodScheduled" and c.get("status") == "False" for c in conditions)


def test_the_plugin_is_found_by_kubectl(env: dict[str, str]) -> None:
    listed = kubectl(env, "plugin", "list")
    assert "kubectl-headroom" in listed.stdout, listed.stderr
    usage = kubectl(env, "headroom", "why")
    assert usage.returncode == 2
    assert "the following arguments are required: POD" in usage.stderr


def test_a_pod_that_fits_nowhere_gets_the_extenders_own_reasons(
    stack: Stack, namespace: str, env: dict[str, str]
) -> None:
    group = "nowhere"
    small, busy, old = (f"why-{stack.label}-{n}" for n in ("small", "busy", "old"))
    stack.add_node(small, [24, 24], group=group)
    stack.add_node(busy, [80], used_gi=30, group=group)
    stack.add_node(old, [80], age_seconds=900, group=group)
    stack.pod(namespace, "big", memory="60Gi", group=group)
    eventually(lambda: rejected(stack, namespace, "big"), what="the scheduler rejecting big")
    nodes = [small, busy, old]
    # The extender's view follows watches: wait until it has every report the lists will show.
    eventually(
        lambda: (
            "no GPU report"
            not in extender_filter(stack, namespace, "big", nodes)["FailedNodes"].values()
        ),
        what="the extender's view holding the three reports",
    )
    answer = extender_filter(stack, namespace, "big", nodes)
    result = kubectl(env, "headroom", "why", "big", "-n", namespace, STALENESS, "-o", "json")
    assert result.returncode == 0, result.stderr
    explanation = json.loads(result.stdout)
    verdicts = {v["node"]: v for v in explanation["nodes"]}
    assert answer["NodeNames"] == []
    assert {n: same_age(verdicts[n]["reason"]) for n in nodes} == {
        n: same_age(reason) for n, reason in answer["FailedNodes"].items()
    }
    assert (
        {n for n in nodes if not verdicts[n]["resolvable"]}
        == set(answer["FailedAndUnresolvableNodes"])
        == {small}
    )
    assert "best free 50Gi on GPU 0" in verdicts[busy]["reason"]
    # Every other node in the cluster is one the scheduler never asks about for this pod.
    others = [v for v in explanation["nodes"] if v["node"] not in nodes]
    assert all(v["kind"] == "scheduler" for v in others)
    assert explanation["summary"].startswith(
        "fits no node: 1 node has no GPU with 60Gi free, 1 node's report is stale, "
        "1 node has GPUs too small or too few"
    )
    table = kubectl(env, "headroom", "why", "big", "-n", namespace, STALENESS)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[:2] == [
        f"pod {namespace}/big is pending: not bound to a node yet",
        "demand: 60Gi on 1 GPU, shared (policy binpack)",
    ]
    header = lines.index(next(line for line in lines if line.startswith("NODE ")))
    assert [line.split()[0] for line in lines[header + 1 : header + 4]] == [busy, old, small]
    assert lines[-1] == explanation["summary"]


def test_a_placed_pod_is_bound_with_its_gpu_and_top_shows_it(
    stack: Stack, namespace: str, env: dict[str, str]
) -> None:
    node = f"why-{stack.label}-roomy"
    stack.add_node(node, [80, 40], group="roomy")
    stack.pod(namespace, "placed", memory="30Gi", group="roomy")
    eventually(
        lambda: bool(
            stack.kube.request("GET", f"/api/v1/namespaces/{namespace}/pods/placed")["spec"].get(
                "nodeName"
            )
        ),
        what="the pod bound",
    )
    result = kubectl(env, "headroom", "why", "placed", "--namespace", namespace)
    assert result.returncode == 0, result.stderr
    # binpack: the tighter GPU that fits, GPU 1 (40Gi)
    assert result.stdout.strip() == (
        f"pod {namespace}/placed is not pending: it is bound to {node} (Pending) with "
        f"GPU 1 (GPU-{node}-1)"
    )
    top = kubectl(env, "headroom", "top", "--node", node)
    assert top.returncode == 0, top.stderr
    rows = [line.split(None, 6) for line in top.stdout.splitlines()[1:]]
    assert [(r[1], r[3], r[6]) for r in rows] == [
        ("0", "80Gi/80Gi", "-"),
        ("1", "10Gi/40Gi", f"{namespace}/placed (30Gi, starting)"),
    ]
    status = kubectl(env, "headroom", "status")
    assert status.returncode == 0, status.stderr
    assert any(line.split()[:2] == [node, "1"] for line in status.stdout.splitlines())


def two_contexts(tmp_path: Path, cluster: LocalCluster, *, namespace: str) -> tuple[Path, str]:
    """A kubeconfig whose current context points at a port nothing listens on, with a context
    "real" for the cluster whose default namespace is `namespace`."""
    config: dict[str, Any] = yaml.safe_load(cluster.kubeconfig.read_text())
    real = config["contexts"][0]["context"]
    nowhere = f"https://127.0.0.1:{free_port()}"
    config["clusters"].append({"name": "nowhere", "cluster": {"server": nowhere}})
    config["contexts"] = [
        {"name": "nowhere", "context": {"cluster": "nowhere", "user": real["user"]}},
        {"name": "real", "context": {**real, "namespace": namespace}},
    ]
    config["current-context"] = "nowhere"
    path = tmp_path / "two-contexts"
    path.write_text(yaml.safe_dump(config))
    return path, nowhere


def test_the_context_picks_the_cluster_and_the_namespace(
    stack: Stack, namespace: str, env: dict[str, str], tmp_path: Path, cluster: LocalCluster
) -> None:
    path, nowhere = two_contexts(tmp_path, cluster, namespace=namespace)
    mine = env | {"KUBECONFIG": str(path)}
    down = kubectl(mine, "headroom", "why", "ghost", "--request-timeout=3s")
    assert down.returncode == 1
    assert down.stderr.startswith(
        f"kubectl headroom: error: cannot reach the cluster at {nowhere} (waited 3s to connect "
        "and 3s for an answer; context nowhere)"
    )
    missing = kubectl(mine, "headroom", "--context", "real", "why", "ghost")
    assert missing.returncode == 1
    assert missing.stderr == (
        f'kubectl headroom: error: pod "ghost" not found in namespace {namespace}\n'
    )


def test_no_permission_names_the_rbac_needed(
    cluster: LocalCluster, namespace: str, env: dict[str, str], tmp_path: Path
) -> None:
    cluster.kubectl("create", "serviceaccount", "nobody", "-n", namespace)
    token = cluster.service_account_token(namespace, "nobody")
    config = cluster.token_kubeconfig(tmp_path / "nobody", token, user="nobody")
    result = kubectl(env, "headroom", "why", "x", "-n", namespace, f"--kubeconfig={config}")
    assert result.returncode == 1
    assert result.stderr.startswith(
        f"kubectl headroom: error: no permission to read pods (get in namespace {namespace}): "
        "HTTP 403: "
    )
    assert result.stderr.rstrip().endswith(
        f'the RBAC needed: {{apiGroups: [""], resources: ["pods"], verbs: ["get"]}} in a Role '
        f"in namespace {namespace} bound to you"
    )
