"""`kubectl get gpunodes` and `kubectl get aiscalers` on a real API server: the printer
columns answer "where is the headroom" and "why is it not scaling" from the statuses the node
agent and the scaler really write (`report_to_status`, the scaler's `round_status`)."""

from __future__ import annotations

import re
import time

from extender.scaler.report import blocked_status, with_transitions
from headroom import names
from headroom.report import GpuPod, GpuState, NodeReport, report_to_status
from kubeapi.client import JsonDict, Kube
from tests.manifests.scaler_round import limited_round_status, seed_scaler
from tooling.localcluster import LocalCluster

GI = 2**30
GPUNODES = f"/apis/{names.GROUP_VERSION}/{names.GPUNODE_PLURAL}"
NONE = ""  # how the API server's table shows a field the object does not have


def table(text: str) -> list[dict[str, str]]:
    """kubectl's table as rows of {HEADER: cell}, cut at the header's column starts (cells such
    as a message hold spaces, so splitting on whitespace would not do)."""
    header, *lines = text.rstrip("\n").split("\n")
    starts = [m.start() for m in re.finditer(r"\S+", header)]
    keys = header.split()
    bounds = [*starts[1:], None]
    return [
        {k: line[s:e].strip() for k, s, e in zip(keys, starts, bounds, strict=True)}
        for line in lines
    ]


def age_seconds(text: str) -> int:
    """kubectl's short duration ("7s", "3m20s", "2d3h") in seconds."""
    match = re.fullmatch(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text)
    assert match and text, f"not a kubectl age: {text!r}"
    d, h, m, s = (int(g or 0) for g in match.groups())
    return ((d * 24 + h) * 60 + m) * 60 + s


def l4(
    index: int,
    *,
    used_gi: int = 0,
    healthy: bool = True,
    pods: tuple[GpuPod, ...] = (),
    unattributed_gi: int = 0,
) -> GpuState:
    return GpuState(
        index=index,
        uuid=f"GPU-L4-{index}",
        model="NVIDIA L4",
        total_bytes=24 * GI,
        used_bytes=used_gi * GI,
        healthy=healthy,
        reason="" if healthy else "GPU is lost",
        pods=pods,
        unattributed_bytes=unattributed_gi * GI,
    )


def publish(kube: Kube, report: NodeReport) -> None:
    """What a node agent does: create the GPUNode, then write its report as the status."""
    created = kube.request(
        "POST",
        GPUNODES,
        body={
            "apiVersion": names.GROUP_VERSION,
            "kind": names.GPUNODE_KIND,
            "metadata": {"name": report.node_name},
            "spec": {"nodeName": report.node_name},
        },
    )
    created["status"] = report_to_status(report)
    kube.request("PUT", f"{GPUNODES}/{report.node_name}/status", body=created)


def test_kubectl_get_gpunodes_shows_where_the_headroom_is(
    cluster: LocalCluster, kube: Kube
) -> None:
    now = time.time()
    pod = GpuPod("uid-llm-0", 18 * GI, "ml", "llm-0")
    reports = [
        # One pod on GPU 0; GPU 1 partly used by a process outside Kubernetes; GPU 2 lost.
        NodeReport(
            node_name="cols-l4-busy",
            reported_at_unix_seconds=now - 5,
            gpus=(
                l4(0, used_gi=18, pods=(pod,)),
                l4(1, used_gi=6, unattributed_gi=6),
                l4(2, healthy=False),
                l4(3),
            ),
        ),
        NodeReport(node_name="cols-l4-idle", reported_at_unix_seconds=now - 5, gpus=(l4(0), l4(1))),
        # An agent that stopped writing 200 s ago (the extender's limit is 90 s).
        NodeReport(
            node_name="cols-l4-stale", reported_at_unix_seconds=now - 200, gpus=(l4(0), l4(1))
        ),
        NodeReport(
            node_name="cols-no-driver",
            reported_at_unix_seconds=now - 5,
            healthy=False,
            reason="NVML: driver not loaded",
            gpus=(l4(0, healthy=False),),
        ),
    ]
    for report in reports:
        publish(kube, report)
    node_names = [r.node_name for r in reports]

    narrow = cluster.kubectl("get", "gpunodes", *node_names).stdout
    wide = cluster.kubectl("get", "gpunodes", *node_names, "-o", "wide").stdout
    print(f"\n$ kubectl get gpunodes\n{narrow}\n$ kubectl get gpunodes -o wide\n{wide}")

    assert narrow.split("\n")[0].split() == [
        "NAME",
        "GPUS",
        "HEALTHY",
        "FREE",
        "LARGEST-FREE",
        "REPORTED",
    ]
    rows = {r["NAME"]: r for r in table(wide)}
    assert list(rows) == sorted(node_names)
    cells = {
        n: [r["GPUS"], r["HEALTHY"], r["FREE"], r["LARGEST-FREE"], r["UNCLAIMED"]]
        for n, r in rows.items()
    }
    assert cells == {
        "cols-l4-busy": ["4", "3", "48Gi", "24Gi", "2"],  # 6 + 18 + 24 free; GPU 0 is the pod's
        "cols-l4-idle": ["2", "2", "48Gi", "24Gi", "2"],
        "cols-l4-stale": ["2", "2", "48Gi", "24Gi", "2"],
        "cols-no-driver": ["1", "0", "0", "0", "0"],
    }
    assert rows["cols-l4-busy"]["MODEL"] == "NVIDIA L4"
    assert rows["cols-no-driver"]["REASON"] == "NVML: driver not loaded"
    assert rows["cols-l4-idle"]["REASON"] == NONE
    # The age is what tells a stale report at a glance (the test itself takes a few seconds).
    assert 5 <= age_seconds(rows["cols-l4-idle"]["REPORTED"]) < 90
    assert 200 <= age_seconds(rows["cols-l4-stale"]["REPORTED"]) < 290


def condition(status: JsonDict, kind: str) -> JsonDict:
    found: list[JsonDict] = [c for c in status["conditions"] if c["type"] == kind]
    assert len(found) == 1, f"{len(found)} conditions of type {kind}"
    return found[0]


def test_kubectl_get_aiscalers_shows_why_it_is_not_scaling(
    cluster: LocalCluster, kube: Kube, namespace: str
) -> None:
    now = time.time()
    base = f"/apis/{names.GROUP_VERSION}/namespaces/{namespace}/{names.AISCALER_PLURAL}"
    statuses: dict[str, JsonDict] = {}
    for name in ("llm-scaler", "llm-blocked", "llm-new"):
        scaler = seed_scaler(namespace)
        scaler["metadata"]["name"] = name
        created = kube.request("POST", base, body=scaler)
        if name == "llm-scaler":
            statuses[name] = limited_round_status(created, now)
        elif name == "llm-blocked":
            statuses[name] = with_transitions(
                blocked_status(
                    "ConflictingHPA",
                    "HorizontalPodAutoscaler llm also scales Deployment "
                    "llm-server; this AIScaler does nothing while it exists",
                    generation=1,
                    previous={},
                ),
                {},
                now_unix_seconds=now,
            )
        else:
            continue  # a scaler no round has reached yet: no status at all
        kube.request(
            "PATCH",
            f"{base}/{name}/status",
            body={"status": statuses[name]},
            content_type="application/merge-patch+json",
        )

    narrow = cluster.kubectl("get", "-n", namespace, "aiscalers").stdout
    wide = cluster.kubectl("get", "-n", namespace, "aiscalers", "-o", "wide").stdout
    print(f"\n$ kubectl get aiscalers\n{narrow}\n$ kubectl get aiscalers -o wide\n{wide}")

    rows = {r["NAME"]: r for r in table(wide)}
    limited = statuses["llm-scaler"]
    assert [
        rows["llm-scaler"][k] for k in ("MIN", "MAX", "DESIRED", "FEASIBLE", "APPLIED", "CURRENT")
    ] == [
        "1",
        "10",
        *(
            str(limited[k])
            for k in ("desiredReplicas", "feasibleReplicas", "appliedReplicas", "currentReplicas")
        ),
    ]
    assert int(limited["desiredReplicas"]) > int(limited["appliedReplicas"])
    assert rows["llm-scaler"]["LIMITED"] == "InsufficientGPUHeadroom"
    assert rows["llm-scaler"]["METRICS"] == "ValidMetricFound"
    assert [rows["llm-scaler"][k] for k in ("COLD-P50", "COLD-P90")] == ["142", "171.5"]
    message = condition(limited, "ScalingLimited")["message"]
    assert rows["llm-scaler"]["MESSAGE"] == message
    assert "fit" in message and "largest free 12Gi" in message
    assert [rows["llm-blocked"][k] for k in ("DESIRED", "LIMITED", "METRICS")] == [
        NONE,
        "ConflictingHPA",
        "ConflictingHPA",
    ]
    assert [rows["llm-new"][k] for k in ("MIN", "MAX", "DESIRED", "LIMITED", "MESSAGE")] == [
        "1",
        "10",
        NONE,
        NONE,
        NONE,
    ]
    assert narrow.split("\n")[0].split() == [
        "NAME",
        "MIN",
        "MAX",
        "DESIRED",
        "FEASIBLE",
        "APPLIED",
        "LIMITED",
        "AGE",
    ]
