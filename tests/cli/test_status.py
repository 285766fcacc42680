"""`headroom status` accounts DRA as the extender does, against a fake API: GPUs allocated to
claims show reserved, device-tainted GPUs show unhealthy, and a cluster without DRA still works."""

from __future__ import annotations

from typing import Any

import pytest

from cli import api
from cli.main import main
from cli.status import StatusError, gather, render
from kubeapi.client import ApiError, NotFound
from tests.extender.builders import GI, NOW, gpunode
from tests.headroom.dra_builders import claim, dra_pod
from tests.kubeapi.fake import FakeKube
from tooling.dra import device_taint_rule, resource_slice


def items(*objs: dict[str, Any]) -> dict[str, Any]:
    return {"items": list(objs)}


def cluster(
    *pods: dict[str, Any],
    claims: tuple[dict[str, Any], ...] = (),
    rules: tuple[dict[str, Any], ...] = (),
    taints: dict[int, list[tuple[str, str, str]]] | None = None,
) -> FakeKube:
    """node-a with two 80Gi GPUs (GPU-node-a-0, -1), published by DRA as node-a's gpu-0, gpu-1."""
    slice_a = resource_slice(
        "node-a", [("GPU-node-a-0", 80 * GI), ("GPU-node-a-1", 80 * GI)], taints=taints
    )
    return (
        FakeKube()
        .on("GET", api.GPUNODES, items(gpunode("node-a", [80, 80])))
        .on("GET", api.PODS, items(*pods))
        .on("GET", api.AISCALERS, items())
        .on("GET", api.RESOURCE_SLICES, items(slice_a))
        .on("GET", api.RESOURCE_CLAIMS, items(*claims))
        .on("GET", api.DEVICE_TAINT_RULES, items(*rules))
    )


def table(kube: FakeKube, **kwargs: Any) -> dict[int, tuple[int, int, bool]]:
    """GPU index -> (reserved, free, healthy)."""
    rows, _ = gather(kube, now_unix_seconds=NOW, **kwargs)
    return {r.gpu: (r.reserved_bytes, r.free_bytes, r.healthy) for r in rows}


def test_a_bound_dra_pods_allocated_gpu_shows_reserved() -> None:
    held = claim("model-gpu", devices=[("node-a", "gpu-1")], reserved_for=["model"])
    kube = cluster(dra_pod("model", "model-gpu", node_name="node-a"), claims=(held,))
    # Exclusive: the whole GPU is reserved for the starting pod.
    assert table(kube) == {0: (0, 80 * GI, True), 1: (80 * GI, 0, True)}


def test_a_claim_sharing_part_of_a_gpu_reserves_what_it_asks() -> None:
    share = claim("share", memory=30 * GI, devices=[("node-a", "gpu-0")], reserved_for=["m"])
    kube = cluster(dra_pod("m", "share", node_name="node-a"), claims=(share,))
    assert table(kube)[0] == (30 * GI, 50 * GI, True)


def test_an_allocation_for_a_pod_not_bound_yet_holds_its_gpu() -> None:
    held = claim("next-gpu", devices=[("node-a", "gpu-0")], reserved_for=["next"])
    kube = cluster(dra_pod("next", "next-gpu"), claims=(held,))
    assert table(kube)[0] == (80 * GI, 0, True)


def test_only_the_given_device_classes_ask_for_gpus() -> None:
    share = claim("share", memory=30 * GI, devices=[("node-a", "gpu-0")], reserved_for=["m"])
    kube = cluster(dra_pod("m", "share", node_name="node-a"), claims=(share,))
    # The pod's claim asks nothing of these classes: the pod is no GPU pod; its claim's
    # allocation is not counted either, as its reserved pod is bound.
    assert table(kube, gpu_device_classes=["other.example.com"])[0] == (0, 80 * GI, True)


def test_a_tainted_gpu_shows_unhealthy() -> None:
    by_slice = cluster(taints={0: [("fault", "xid", "NoExecute")]})
    assert [h for _, _, h in table(by_slice).values()] == [False, True]
    by_rule = cluster(rules=(device_taint_rule("drain", pool="node-a", device="gpu-1"),))
    assert table(by_rule) == {0: (0, 80 * GI, True), 1: (0, 80 * GI, False)}
    rows, _ = gather(by_rule, now_unix_seconds=NOW)
    assert "NO" in render(rows, []).splitlines()[2].split()


@pytest.mark.parametrize(
    "error", [NotFound("the server could not find the requested resource"), ApiError(403, "no")]
)
def test_without_dra_served_or_readable_status_still_answers(error: ApiError) -> None:
    kube = cluster()
    for path in (api.RESOURCE_SLICES, api.RESOURCE_CLAIMS, api.DEVICE_TAINT_RULES):
        kube.on("GET", path, error)
    assert table(kube) == {0: (0, 80 * GI, True), 1: (0, 80 * GI, True)}


def test_other_dra_errors_are_still_errors() -> None:
    kube = cluster().on("GET", api.RESOURCE_CLAIMS, ApiError(500, "etcd is down"))
    with pytest.raises(StatusError, match="etcd is down"):
        gather(kube, now_unix_seconds=NOW)


def test_missing_crds_are_still_named() -> None:
    kube = cluster().on("GET", api.GPUNODES, NotFound("no gpunodes"))
    with pytest.raises(StatusError, match="CRDs are not installed"):
        gather(kube, now_unix_seconds=NOW)


def test_the_gpu_device_classes_flag_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake_gather(kube: object, **kwargs: Any) -> tuple[list[Any], list[Any]]:
        seen.update(kwargs)
        return [], []

    monkeypatch.setattr("cli.status.gather", fake_gather)
    monkeypatch.setattr("kubeapi.client.load_api_client", lambda path: None)
    assert main(["status", "--gpu-device-classes", "a.example.com, b.example.com"]) == 0
    assert seen["gpu_device_classes"] == ["a.example.com", "b.example.com"]
    seen.clear()
    assert main(["status"]) == 0
    assert seen["gpu_device_classes"] == ["gpu.nvidia.com"]


def test_a_bad_device_class_is_refused_naming_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--gpu-device-classes", "GPU_big"]) == 2
    err = capsys.readouterr().err
    assert "headroom status: error: --gpu-device-classes: expected DNS subdomains" in err
