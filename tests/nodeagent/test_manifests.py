"""manifests/nodeagent/: the DaemonSet's placement, privileges and flags, and RBAC that grants
exactly what the agent uses. (The API server validates them in tests/e2e/test_nodeagent.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from cli.main import build_parser
from headroom import names
from headroom.quantity import parse_bytes

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests" / "nodeagent"


def load(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((MANIFESTS / name).read_text()) if d]


def daemonset() -> dict[str, Any]:
    (ds,) = load("daemonset.yaml")
    return ds


def test_kustomization_lists_every_file() -> None:
    (kustomization,) = load("kustomization.yaml")
    files = {p.name for p in MANIFESTS.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files


def test_the_daemonset_runs_on_gpu_nodes_only_and_sees_host_pids() -> None:
    spec = daemonset()["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {names.GPU_PRESENT_NODE_LABEL: "true"}
    assert {"key": names.GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"} in spec[
        "tolerations"
    ]
    assert spec["hostPID"] is True
    assert spec.get("hostNetwork", False) is False
    assert spec["serviceAccountName"] == "headroom-nodeagent"


def test_the_container_is_unprivileged_small_and_gets_nvml() -> None:
    pod = daemonset()["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "headroom/headroom:0.1.0"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    security = container["securityContext"]
    assert security == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert env["NVIDIA_VISIBLE_DEVICES"] == "all"
    assert env["NVIDIA_DRIVER_CAPABILITIES"] == "utility"
    assert env["NODE_NAME"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    resources = container["resources"]
    assert names.GPU_RESOURCE not in resources["limits"]  # it must not take a GPU from pods
    assert parse_bytes(resources["limits"]["memory"], field="limits.memory") >= 80 * 2**20
    assert parse_bytes(resources["requests"]["memory"], field="requests.memory") <= 128 * 2**20


def test_the_container_flags_are_valid_and_probes_match_the_endpoints() -> None:
    (container,) = daemonset()["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["headroom", "nodeagent"]
    args = build_parser().parse_args([*container["command"][1:], *container["args"]])
    port = {p["name"]: p["containerPort"] for p in container["ports"]}["metrics"]
    assert args.metrics_bind == ("0.0.0.0", port)  # noqa: S104 - a pod's own address
    assert (args.device_taints, args.gpu_drivers) == ("NoSchedule", ("gpu.nvidia.com",))
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "metrics"}


def test_rbac_grants_exactly_what_the_agent_uses() -> None:
    role, binding = load("rbac.yaml")
    rules = {
        (g, r, v)
        for rule in role["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }
    assert rules == {
        ("", "nodes", "get"),
        *((names.API_GROUP, "gpunodes", v) for v in ("create", "get", "update", "patch")),
        *((names.API_GROUP, "gpunodes/status", v) for v in ("get", "update", "patch")),
        ("resource.k8s.io", "resourceslices", "list"),
        *(
            ("resource.k8s.io", "devicetaintrules", v)
            for v in ("get", "list", "create", "update", "delete")
        ),
    }
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    (account,) = load("serviceaccount.yaml")
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": account["metadata"]["name"],
            "namespace": names.SYSTEM_NAMESPACE,
        }
    ]
    assert daemonset()["metadata"]["namespace"] == names.SYSTEM_NAMESPACE


def policies() -> dict[str, dict[str, Any]]:
    return {
        d["metadata"]["name"]: d
        for d in load("admission-policy.yaml")
        if d["kind"] == "ValidatingAdmissionPolicy"
    }


def test_every_admission_policy_is_bound_to_deny_and_names_the_agent() -> None:
    docs = load("admission-policy.yaml")
    kinds = {d["kind"] for d in docs}
    assert kinds == {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
    bound = {
        d["spec"]["policyName"]: d["spec"]["validationActions"]
        for d in docs
        if d["kind"] == "ValidatingAdmissionPolicyBinding"
    }
    defined = {d["metadata"]["name"] for d in docs if d["kind"] == "ValidatingAdmissionPolicy"}
    assert defined == {"headroom-nodeagent-own-gpunode", "headroom-nodeagent-own-devicetaintrules"}
    assert bound == {name: ["Deny"] for name in defined}
    (account,) = load("serviceaccount.yaml")
    username = f"system:serviceaccount:{names.SYSTEM_NAMESPACE}:{account['metadata']['name']}"
    for name in defined:
        policy = policies()[name]["spec"]
        assert policy["failurePolicy"] == "Fail"
        (condition,) = policy["matchConditions"]
        assert f"'{username}'" in condition["expression"]


def test_the_device_taint_policy_covers_every_write_the_role_grants() -> None:
    spec = policies()["headroom-nodeagent-own-devicetaintrules"]["spec"]
    (rule,) = spec["matchConstraints"]["resourceRules"]
    assert rule["apiGroups"] == ["resource.k8s.io"]
    assert rule["resources"] == ["devicetaintrules"]
    role, _ = load("rbac.yaml")
    granted = {
        v
        for r in role["rules"]
        if "devicetaintrules" in r["resources"]
        for v in r["verbs"]
        if v not in ("get", "list", "watch")
    }
    assert {op.lower() for op in rule["operations"]} == granted == {"create", "update", "delete"}
    variables = {v["name"]: v["expression"] for v in spec["variables"]}
    # A DELETE is judged by the rule deleted; the name prefix and label are what the agent
    # writes (nodeagent.taints).
    assert "request.operation == 'DELETE' ? oldObject : object" in variables["rule"]
    assert variables["prefix"] == "'headroom-' + variables.node + '-'"
    assert "'headroom.dev/node'" in variables["label"]
    assert "oldObject" in variables["oldLabel"]
