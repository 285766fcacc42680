"""The demo's DRA pool, without a cluster: DRA nodes carry no device-plugin GPUs, their slices
publish the UUIDs the fake NVML reports, claim workloads get claims instead of `nvidia.com/gpu`,
and the kubelet and the summary read which GPU each bound pod's claim holds."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from headroom import names
from headroom.dra import NVIDIA_GPU_DRIVER, device_index
from kubeapi.client import Conflict
from tests.kubeapi.fake import FakeKube
from tooling.demo import dra
from tooling.demo.model import Claim, GpuAsk, NodeGroup, OutsideProcess, Workload
from tooling.demo.nodes import SimNode, node_object
from tooling.demo.objects import deployment, job
from tooling.demo.scenario import SCENARIOS_DIR, load

GI = 2**30
H100 = "NVIDIA H100 80GB HBM3"
NS = "demo"


def dra_node(tmp_path: Path, *, shared: bool = False, outside_gi: int = 0) -> SimNode:
    outside = (OutsideProcess("notebook", 1, outside_gi * GI),) if outside_gi else ()
    group = NodeGroup("h100-dra", 1, 2, H100, 80 * GI, outside, dra=True, dra_shared=shared)
    return SimNode("h100-dra", group, tmp_path / "h100-dra")


def reranker(claim: Claim, memory: str = "30Gi") -> Workload:
    ask = GpuAsk(memory, 30 * GI if memory else 0, claim.count, False)
    return Workload("reranker", 2, ask, claim=claim)


def test_a_dra_node_has_no_device_plugin_gpus_nor_gpu_feature_discovery_labels(
    tmp_path: Path,
) -> None:
    obj, status = node_object(dra_node(tmp_path))
    labels = obj["metadata"]["labels"]
    assert names.GPU_PRESENT_NODE_LABEL not in labels
    assert names.GPU_MEMORY_NODE_LABEL not in labels
    assert names.GPU_RESOURCE not in status["capacity"]
    assert names.GPU_RESOURCE not in status["allocatable"]
    plugin = NodeGroup("a100", 1, 2, "NVIDIA A100-SXM4-80GB", 80 * GI)
    obj, status = node_object(SimNode("a100", plugin, tmp_path / "a100"))
    assert obj["metadata"]["labels"][names.GPU_PRESENT_NODE_LABEL] == "true"
    assert status["allocatable"][names.GPU_RESOURCE] == "2"


def test_the_slice_publishes_the_uuids_the_fake_nvml_reports(tmp_path: Path) -> None:
    node = dra_node(tmp_path)
    index = device_index([dra.node_slice(node)])
    reported = [d["uuid"] for d in node.state()["devices"]]
    assert [index[(NVIDIA_GPU_DRIVER, "h100-dra", f"gpu-{i}")].uuid for i in (0, 1)] == reported
    assert all(d.memory_bytes == 80 * GI and d.node_name == "h100-dra" for d in index.values())
    shared = dra.node_slice(dra_node(tmp_path / "s", shared=True))
    assert all(d.get("allowMultipleAllocations") for d in shared["spec"]["devices"])
    assert not any("allowMultipleAllocations" in d for d in dra.node_slice(node)["spec"]["devices"])


def test_install_makes_the_device_class_and_tolerates_it_existing(tmp_path: Path) -> None:
    kube = FakeKube()
    kube.on("POST", f"{dra.RESOURCE}/deviceclasses", Conflict("already exists"))
    kube.on("POST", f"{dra.RESOURCE}/resourceslices", {})
    plugin = NodeGroup("a100", 1, 2, "NVIDIA A100-SXM4-80GB", 80 * GI)
    dra.install(kube, [dra_node(tmp_path), SimNode("a100", plugin, tmp_path / "a100")])
    assert kube.requests("POST") == [
        f"POST {dra.RESOURCE}/deviceclasses",
        f"POST {dra.RESOURCE}/resourceslices",  # the DRA node's only
    ]


def test_a_claim_workload_gets_a_claim_and_no_device_plugin_gpu() -> None:
    spec = job(reranker(Claim(count=1)))["spec"]["template"]["spec"]
    assert spec["resourceClaims"] == [{"name": "gpu", "resourceClaimTemplateName": "reranker-gpu"}]
    (container,) = spec["containers"]
    assert container["resources"] == {"claims": [{"name": "gpu"}]}
    assert "nodeSelector" not in spec
    exactly = dra.template(reranker(Claim(count=2)))["spec"]["spec"]["devices"]["requests"][0]
    assert exactly["exactly"]["count"] == 2 and "capacity" not in exactly["exactly"]
    share = dra.template(reranker(Claim(memory="20Gi", memory_bytes=20 * GI), memory=""))
    requested = share["spec"]["spec"]["devices"]["requests"][0]["exactly"]["capacity"]
    assert requested == {"requests": {"memory": str(20 * GI)}}
    template = job(reranker(Claim(memory="20Gi", memory_bytes=20 * GI), memory=""))
    assert template["spec"]["template"]["metadata"]["annotations"] == {}


def test_the_models_replicas_stay_on_device_plugin_nodes() -> None:
    template = deployment(load(SCENARIOS_DIR / "default.yaml"))["spec"]["template"]
    assert template["spec"]["nodeSelector"] == {names.GPU_PRESENT_NODE_LABEL: "true"}


def claim_pod(claim_name: str, *, node: str = "h100-dra") -> dict[str, Any]:
    template: dict[str, Any] = copy.deepcopy(job(reranker(Claim(count=1)))["spec"]["template"])
    template["metadata"] |= {"name": "reranker-a", "namespace": NS, "uid": "uid-a"}
    template["spec"]["nodeName"] = node
    template["status"] = {
        "resourceClaimStatuses": [{"name": "gpu", "resourceClaimName": claim_name}]
    }
    return template


def claim(name: str, device: str | None, *, pool: str = "h100-dra") -> dict[str, Any]:
    spec = dra.template(reranker(Claim(count=1)))["spec"]["spec"]
    obj: dict[str, Any] = {"metadata": {"name": name, "namespace": NS}, "spec": spec}
    if device is not None:
        result = {"request": "gpu", "driver": NVIDIA_GPU_DRIVER, "pool": pool, "device": device}
        obj["status"] = {"allocation": {"devices": {"results": [result]}}}
    return obj


def test_the_kubelet_starts_a_claim_pod_on_the_gpu_its_claim_holds(tmp_path: Path) -> None:
    node = dra_node(tmp_path)
    index = device_index([dra.node_slice(node)])
    path = f"{dra.RESOURCE}/namespaces/{NS}/resourceclaims"
    kube = FakeKube()
    kube.on("GET", f"{path}/c1", claim("c1", "gpu-1"))
    kube.on("GET", f"{path}/c2", claim("c2", None))
    kube.on("GET", f"{path}/c3", claim("c3", "gpu-0", pool="elsewhere"))
    prepared = dra.prepare(kube, claim_pod("c1"), node, index)
    assert isinstance(prepared, tuple)
    demand, gpus = prepared
    assert gpus == (1,) and demand.memory_bytes == 30 * GI and demand.dra and not demand.shared
    assert dra.prepare(kube, claim_pod("c2"), node, index) is None  # not allocated yet
    other = SimNode("elsewhere", node.group, tmp_path / "elsewhere")
    index |= device_index([dra.node_slice(other)])
    refused = dra.prepare(kube, claim_pod("c3"), node, index)
    assert isinstance(refused, str) and other.gpu_uuid(0) in refused


def test_held_names_the_gpu_of_each_bound_pods_claim(tmp_path: Path) -> None:
    node = dra_node(tmp_path)
    index = device_index([dra.node_slice(node)])
    bound = claim_pod("c1")
    unbound = claim_pod("c2")  # the allocator's choice, which bind may still refuse
    unbound["metadata"]["name"] = "reranker-b"
    del unbound["spec"]["nodeName"]
    claims = [claim("c1", "gpu-1"), claim("c2", "gpu-0")]
    assert dra.held([bound, unbound], claims, index, {node.name: node}) == [
        dra.Held("reranker-a", "h100-dra", "c1", node.gpu_uuid(1), 1)
    ]
