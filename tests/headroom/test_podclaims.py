"""A pod's GPUs through DRA: its claim references, what its claims (or, before they exist, their
templates) ask, and the GPUs and nodes the allocated ones hold."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from headroom.dra import GpuAsk
from headroom.fields import FieldError
from headroom.podclaims import NO_GPUS, ClaimRef, PodGpus, claim_refs, pod_gpus
from tests.headroom.dra_builders import claim, lookups
from tooling.dra import GIB, claim_template


def pod(*refs: dict[str, str], statuses: list[dict[str, str]] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "metadata": {"name": "p", "namespace": "ml", "uid": "p"},
        "spec": {"resourceClaims": list(refs), "containers": [{"name": "c"}]},
    }
    if statuses is not None:
        out["status"] = {"resourceClaimStatuses": statuses}
    return out


def named(claim_name: str, entry: str = "gpu") -> dict[str, str]:
    return {"name": entry, "resourceClaimName": claim_name}


def from_template(template: str, entry: str = "gpu") -> dict[str, str]:
    return {"name": entry, "resourceClaimTemplateName": template}


# -- references ----------------------------------------------------------------------------------
def test_a_named_claim_is_its_own_name_and_a_template_takes_the_generated_one() -> None:
    refs = claim_refs(
        pod(
            named("fixed", "a"),
            from_template("t", "b"),
            from_template("t", "c"),
            statuses=[{"name": "b", "resourceClaimName": "p-b-x7"}, {"name": "c"}],
        )
    )
    assert refs == [
        ClaimRef("spec.resourceClaims[0]", "fixed", None),
        ClaimRef("spec.resourceClaims[1]", "p-b-x7", "t"),
        ClaimRef("spec.resourceClaims[2]", None, "t"),  # no claim generated (yet)
    ]


def test_a_reference_naming_neither_claim_nor_template_is_a_field_error() -> None:
    with pytest.raises(FieldError) as info:
        claim_refs(pod({"name": "gpu"}))
    assert info.value.field == "spec.resourceClaims[0]"


def test_a_pod_without_claims_asks_nothing_through_dra() -> None:
    assert pod_gpus({"spec": {"containers": []}}, lookups()) is NO_GPUS
    assert not NO_GPUS.allocated


# -- template before the claim, claim after ------------------------------------------------------
def test_before_its_claim_exists_the_template_says_what_it_will_ask() -> None:
    found = pod_gpus(pod(from_template("two")), lookups(templates=[claim_template("two", count=2)]))
    assert found == PodGpus(GpuAsk(2), pending=1)
    assert not found.allocated


def test_a_generated_claim_not_seen_yet_falls_back_to_its_template() -> None:
    found = pod_gpus(
        pod(from_template("two"), statuses=[{"name": "gpu", "resourceClaimName": "p-gpu-1"}]),
        lookups(templates=[claim_template("two", count=2)]),
    )
    assert found == PodGpus(GpuAsk(2), pending=1)


def test_once_generated_the_claim_speaks_not_the_template() -> None:
    generated = claim("p-gpu-1", count=1, devices=[("node-b", "gpu-0")])
    found = pod_gpus(
        pod(from_template("two"), statuses=[{"name": "gpu", "resourceClaimName": "p-gpu-1"}]),
        lookups([generated], [claim_template("two", count=2)]),
    )
    assert found == PodGpus(GpuAsk(1), ("GPU-b0",), ("node-b",))
    assert found.allocated


def test_an_allocated_claim_names_its_gpus_and_each_node_once() -> None:
    both = claim("both", count=2, devices=[("node-a", "gpu-1"), ("node-a", "gpu-0")])
    found = pod_gpus(pod(named("both")), lookups([both]))
    assert found.gpu_uuids == ("GPU-a1", "GPU-a0")
    assert found.nodes == ("node-a",)
    assert (found.pending, found.allocated) == (0, True)


def test_pending_counts_the_gpu_claims_not_allocated_yet() -> None:
    done = claim("done", devices=[("node-b", "gpu-0")])
    waiting = claim("waiting", count=3, memory=10 * GIB)
    found = pod_gpus(pod(named("done", "a"), named("waiting", "b")), lookups([done, waiting]))
    assert found == PodGpus(GpuAsk(4, memory_bytes=10 * GIB), ("GPU-b0",), ("node-b",), 1)
    assert not found.allocated


def test_a_claim_of_another_driver_asks_no_gpu_and_is_not_pending() -> None:
    nic = claim("nic")
    nic["spec"]["devices"]["requests"][0]["exactly"]["deviceClassName"] = "nic.example.com"
    found = pod_gpus(pod(named("nic")), lookups([nic]))
    assert found == PodGpus()
    assert not found.ask.any and not found.allocated


def test_unknown_references_are_named_and_ask_nothing() -> None:
    known = claim("known", devices=[("node-a", "gpu-0")])
    found = pod_gpus(
        pod(named("gone", "a"), named("known", "b"), from_template("missing", "c")),
        lookups([known]),
    )
    assert found.unknown == ("spec.resourceClaims[0]", "spec.resourceClaims[2]")
    assert (found.ask, found.gpu_uuids) == (GpuAsk(1), ("GPU-a0",))


def test_claims_are_looked_up_in_the_pods_namespace() -> None:
    elsewhere = pod(named("known"))
    elsewhere["metadata"]["namespace"] = "other"
    found = pod_gpus(elsewhere, lookups([claim("known")]))
    assert found.unknown == ("spec.resourceClaims[0]",)


# -- malformed objects ---------------------------------------------------------------------------
def test_a_malformed_claim_spec_is_named_with_the_claim() -> None:
    bad = claim("bad")
    bad["spec"]["devices"]["requests"][0]["exactly"]["count"] = 0
    with pytest.raises(FieldError) as info:
        pod_gpus(pod(named("bad")), lookups([bad]))
    assert info.value.field == "ResourceClaim bad: spec.devices.requests[0].exactly.count"


def test_a_malformed_allocation_is_named_with_the_claim() -> None:
    bad = claim("bad", devices=[("node-a", "gpu-0")])
    bad["status"]["allocation"]["devices"]["results"][0]["pool"] = 7
    with pytest.raises(FieldError) as info:
        pod_gpus(pod(named("bad")), lookups([bad]))
    assert info.value.field == "ResourceClaim bad: status.allocation.devices.results[0].pool"


def test_a_malformed_template_names_the_field_where_it_is_in_the_template() -> None:
    bad = claim_template("t")
    bad["spec"]["spec"]["devices"]["requests"][0]["exactly"]["allocationMode"] = "Most"
    with pytest.raises(FieldError) as info:
        pod_gpus(pod(from_template("t")), lookups(templates=[bad]))
    assert info.value.field == (
        "ResourceClaimTemplate t: spec.spec.devices.requests[0].exactly.allocationMode"
    )
    worse = copy.deepcopy(bad)
    worse["spec"]["spec"] = ["not", "a", "spec"]
    with pytest.raises(FieldError) as info:
        pod_gpus(pod(from_template("t")), lookups(templates=[worse]))
    assert info.value.field == "ResourceClaimTemplate t: spec.spec"
