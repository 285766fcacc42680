"""The device tainter against `FakeKube` with an in-memory DeviceTaintRule store: a rule made for a
lost GPU and removed once it is back, stale rules of a previous run removed at start, drift
repaired at the resync, a cluster without `resource.k8s.io` turning it off, and failed rounds
retried with backoff. The API server's view of the same runs in tests/e2e/test_nodeagent_taints.py.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from headroom.backoff import Backoff
from headroom.report import GpuState, NodeReport
from kubeapi.client import ApiError, Conflict, JsonDict, NotFound
from nodeagent import api, taints
from nodeagent.tainter import DeviceTainter
from tests.kubeapi.fake import Call, FakeKube
from tests.waiting import poll
from tooling.dra import GIB, resource_slice

NODE = "gpu-a"
UUIDS = ["GPU-0000", "GPU-1111"]
SLICES = api.dra_path("resourceslices")
RULES = api.dra_path("devicetaintrules")
LOST = "GPU is lost (nvmlDeviceGetHandleByIndex)"
XID = "critical XID 48 (double-bit ECC error) at ...; unhealthy until ..."


def report(*reasons: str, healthy: bool = True) -> NodeReport:
    gpus = tuple(
        GpuState(
            index=i,
            uuid=UUIDS[i],
            model="A100",
            total_bytes=80 * GIB,
            used_bytes=0,
            healthy=not reason,
            reason=reason,
        )
        for i, reason in enumerate(reasons)
    )
    return NodeReport(node_name=NODE, reported_at_unix_seconds=0.0, gpus=gpus, healthy=healthy)


@dataclass
class Store:
    """DeviceTaintRules as the API server keeps them: names unique, resourceVersion checked."""

    kube: FakeKube
    rules: dict[str, JsonDict] = field(default_factory=dict)
    version: int = 0

    def put(self, rule: JsonDict) -> JsonDict:
        self.version += 1
        stored = {**rule, "metadata": {**rule["metadata"], "resourceVersion": str(self.version)}}
        stored["metadata"].setdefault("uid", f"uid-{self.version}")
        self.rules[rule["metadata"]["name"]] = stored
        return stored

    def serve(self) -> None:
        self.kube.on("GET", RULES, self._list).on("POST", RULES, self._create)
        for name in list(self.rules):
            self.route(name)

    def route(self, name: str) -> None:
        path = f"{RULES}/{name}"
        self.kube.on("GET", path, lambda c: self._named(c, name))
        self.kube.on("PUT", path, lambda c: self._update(c, name))
        self.kube.on("DELETE", path, lambda c: self._delete(name))

    def _list(self, call: Call) -> JsonDict:
        key, _, value = str((call.query or {})["labelSelector"]).partition("=")
        items = [
            r for r in self.rules.values() if r["metadata"].get("labels", {}).get(key) == value
        ]
        return {"items": items}

    def _create(self, call: Call) -> JsonDict:
        name = call.body["metadata"]["name"]
        if name in self.rules:
            raise Conflict(f"devicetaintrules {name!r} already exists")
        self.route(name)
        return self.put(call.body)

    def _named(self, call: Call, name: str) -> JsonDict:
        if name not in self.rules:
            raise NotFound(name)
        return self.rules[name]

    def _update(self, call: Call, name: str) -> JsonDict:
        current = self._named(call, name)
        if call.body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            raise Conflict("the object has been modified")
        return self.put(call.body)

    def _delete(self, name: str) -> JsonDict:
        if self.rules.pop(name, None) is None:
            raise NotFound(name)
        return {}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def cluster(*extra_rules: JsonDict) -> tuple[FakeKube, Store]:
    kube = FakeKube()
    kube.on("GET", SLICES, {"items": [resource_slice(NODE, [(u, 80 * GIB) for u in UUIDS])]})
    store = Store(kube)
    for rule in extra_rules:
        store.put(rule)
    store.serve()
    return kube, store


def tainter(kube: FakeKube, clock: Clock, **options: Any) -> DeviceTainter:
    return DeviceTainter(
        kube,
        NODE,
        effect=options.pop("effect", "NoSchedule"),
        resync_seconds=30,
        clock=clock,
        backoff=Backoff(initial_seconds=1, max_seconds=8, rng=random.Random(3)),
        **options,
    )


def taint_of(store: Store, name: str) -> tuple[str, str, str]:
    taint = store.rules[name]["spec"]["taint"]
    return taint["key"], taint["value"], taint["effect"]


def rule_for(device: str, *, node: str = NODE, label: str | None = None) -> JsonDict:
    rule: JsonDict = {
        "metadata": {
            "name": f"headroom-{node}-{device}",
            "labels": {taints.NODE_LABEL: label or node},
        },
        "spec": {
            "deviceSelector": {"driver": "gpu.nvidia.com", "pool": node, "device": device},
            "taint": {"key": taints.TAINT_KEY, "value": "lost", "effect": "NoSchedule"},
        },
    }
    return rule


def test_a_lost_gpu_is_tainted_and_untainted_once_it_is_back() -> None:
    kube, store = cluster()
    clock = Clock()
    t = tainter(kube, clock)
    assert t.step() is None  # no report yet: nothing to go by
    assert kube.calls == []
    t.offer(report("", LOST))
    assert t.step() == "first round"
    assert list(store.rules) == ["headroom-gpu-a-gpu-1"]
    assert taint_of(store, "headroom-gpu-a-gpu-1") == (taints.TAINT_KEY, "lost", "NoSchedule")
    slice_query = next(c.query for c in kube.calls if c.path == SLICES)
    assert slice_query == {"fieldSelector": f"spec.nodeName={NODE}"}
    assert t.stats.held == 1
    calls = len(kube.calls)
    t.offer(report("", LOST))
    assert t.step() is None  # nothing changed, the resync is not due: no call at all
    assert len(kube.calls) == calls
    t.offer(report("", XID))  # a different reason: the rule's value follows
    assert t.step() == "unhealthy GPUs changed"
    assert taint_of(store, "headroom-gpu-a-gpu-1")[1] == "xid-48"
    assert "PUT" in {c.method for c in kube.calls}
    t.offer(report("", ""))
    assert t.step() == "unhealthy GPUs changed"
    assert store.rules == {}
    assert t.stats.held == 0 and t.stats.errors == 0


def test_stale_rules_of_a_previous_run_are_removed_at_start_and_others_left_alone() -> None:
    foreign = rule_for("gpu-0", node="gpu-b")  # another node's: not listed by our label
    mislabelled = {**rule_for("gpu-0"), "metadata": {"name": "someone-elses", "labels": {}}}
    odd = rule_for("gpu-9")
    odd["metadata"]["name"] = "not-ours-gpu-9"  # our label, not our name: left alone
    kube, store = cluster(rule_for("gpu-0"), rule_for("gpu-1"), foreign, mislabelled, odd)
    t = tainter(kube, Clock())
    t.offer(report("", LOST))
    assert t.step() == "first round"
    assert sorted(store.rules) == [
        "headroom-gpu-a-gpu-1",
        "headroom-gpu-b-gpu-0",
        "not-ours-gpu-9",
        "someone-elses",
    ]
    assert kube.requests("DELETE") == [f"DELETE {RULES}/headroom-gpu-a-gpu-0"]
    delete = next(c for c in kube.calls if c.method == "DELETE")
    assert delete.body == {"preconditions": {"uid": "uid-1"}}  # only the rule it listed
    assert kube.requests("POST") == []  # gpu-1's rule was already there, as wanted
    assert t.stats.held == 1


def test_drift_is_repaired_at_the_resync() -> None:
    kube, store = cluster()
    clock = Clock()
    t = tainter(kube, clock, effect="NoExecute")
    t.offer(report(LOST, ""))
    assert t.step() == "first round"
    store.rules.clear()  # deleted by hand
    clock.now = 29.0
    assert t.step() is None
    clock.now = 30.0
    assert t.step() == "resync"
    assert taint_of(store, "headroom-gpu-a-gpu-0") == (taints.TAINT_KEY, "lost", "NoExecute")


def test_a_rule_found_at_create_is_read_and_corrected() -> None:
    kube, store = cluster()
    existing = rule_for("gpu-1")
    existing["metadata"]["labels"] = {}  # not listed by our label, so the create conflicts
    existing["spec"]["taint"]["value"] = "nvml-error"
    store.put(existing)
    store.serve()
    t = tainter(kube, Clock())
    t.offer(report("", LOST))
    assert t.step() == "first round"
    assert kube.requests("POST") == [f"POST {RULES}"]
    assert f"GET {RULES}/headroom-gpu-a-gpu-1" in kube.requests("GET")
    rule = store.rules["headroom-gpu-a-gpu-1"]
    assert rule["metadata"]["labels"][taints.NODE_LABEL] == NODE
    assert taint_of(store, "headroom-gpu-a-gpu-1")[1] == "lost"


def test_with_nvml_unusable_rules_are_added_never_removed() -> None:
    kube, store = cluster(rule_for("gpu-1"))
    t = tainter(kube, Clock())
    # NVML broke before this run saw GPU 1: the report lists GPU 0 only, unhealthy.
    t.offer(report("NVIDIA driver not loaded", healthy=False))
    assert t.step() == "first round"
    assert sorted(store.rules) == ["headroom-gpu-a-gpu-0", "headroom-gpu-a-gpu-1"]
    assert taint_of(store, "headroom-gpu-a-gpu-0")[1] == "nvml-unavailable"
    t.offer(report("", ""))  # readable again, both fine
    assert t.step() == "unhealthy GPUs changed"
    assert store.rules == {}


def test_a_rule_stays_while_its_gpu_is_not_identified_and_goes_once_unpublished() -> None:
    kube, store = cluster(rule_for("gpu-1"), rule_for("gpu-5"))
    t = tainter(kube, Clock())
    # This run found GPU 1 lost before it could read its UUID: it is not named in the report.
    unidentified = replace(report("", LOST).gpus[1], uuid="unknown-gpu-1")
    t.offer(replace(report(""), gpus=(report("").gpus[0], unidentified)))
    assert t.step() == "first round"
    # gpu-1's rule stays (nothing says that GPU is fine); gpu-5 is published by no slice.
    assert sorted(store.rules) == ["headroom-gpu-a-gpu-1"]
    assert kube.requests("DELETE") == [f"DELETE {RULES}/headroom-gpu-a-gpu-5"]
    t.offer(report("", ""))  # identified, and healthy
    assert t.step() == "unhealthy GPUs changed"
    assert store.rules == {}


def test_a_cluster_without_the_api_turns_it_off_with_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    kube = FakeKube()  # no route: 404, as for a group/version the server does not serve
    clock = Clock()
    t = tainter(kube, clock)
    t.offer(report(LOST))
    with caplog.at_level(logging.INFO, logger="nodeagent.tainter"):
        assert t.step() is None
        clock.now = 1000.0
        t.offer(report("", LOST))
        assert t.step() is None
    assert kube.requests() == [f"GET {SLICES}"]  # one try, then nothing
    assert "does not serve resource.k8s.io/v1 ResourceSlices" in t.stats.disabled
    assert [r.getMessage() for r in caplog.records] == [t.stats.disabled]
    assert t.stats.errors == 0


def test_a_missing_devicetaintrule_api_turns_it_off_too() -> None:
    kube = FakeKube().on("GET", SLICES, {"items": []})
    t = tainter(kube, Clock())
    t.offer(report(LOST))
    assert t.step() is None
    assert "DeviceTaintRules" in t.stats.disabled


def test_a_node_name_too_long_for_rule_names_turns_it_off() -> None:
    kube = FakeKube()
    t = DeviceTainter(kube, "n" * 240, effect="NoSchedule")
    t.offer(report(LOST))
    assert t.step() is None
    assert "at most 233" in t.stats.disabled and kube.calls == []
    with pytest.raises(ValueError, match="effect"):
        DeviceTainter(kube, NODE, effect="None")


def test_a_failed_round_is_retried_with_backoff() -> None:
    kube, store = cluster()
    kube.on("GET", SLICES, ApiError(503, "etcd leader changed"))
    clock = Clock()
    t = tainter(kube, clock)
    t.offer(report("", LOST))
    delays = []
    for attempt in range(5):
        assert t.step() is None
        retry_at = t.retry_at
        assert retry_at is not None and t.stats.errors == attempt + 1
        delays.append(retry_at - clock.now)
        calls = len(kube.calls)
        clock.now = retry_at - 0.01
        t.offer(report(LOST, LOST))  # a change does not cut the backoff short
        assert t.step() is None and len(kube.calls) == calls
        clock.now = retry_at
    assert "etcd leader changed" in t.stats.last_error
    assert all(0 <= d <= 8 for d in delays) and max(delays) > 1
    kube.on("GET", SLICES, {"items": [resource_slice(NODE, [(u, 80 * GIB) for u in UUIDS])]})
    assert t.step() == "retry after an error"
    assert sorted(store.rules) == ["headroom-gpu-a-gpu-0", "headroom-gpu-a-gpu-1"]  # the newest
    assert t.retry_at is None and t.backoff.failures == 0 and not t.stats.disabled


def test_a_refused_write_is_an_error_not_the_end(caplog: pytest.LogCaptureFixture) -> None:
    kube, _ = cluster()
    kube.on("POST", RULES, ApiError(403, "denied by headroom-nodeagent-own-devicetaintrules"))
    t = tainter(kube, Clock())
    t.offer(report(LOST))
    with caplog.at_level(logging.WARNING, logger="nodeagent.tainter"):
        assert t.step() is None
    assert t.stats.errors == 1 and t.retry_at is not None and not t.stats.disabled
    assert "denied by headroom-nodeagent-own-devicetaintrules" in caplog.text


def test_the_thread_reconciles_what_is_offered_and_stops() -> None:
    kube, store = cluster()
    t = DeviceTainter(kube, NODE, effect="NoSchedule", resync_seconds=30)
    t.start()
    try:
        t.offer(report("", LOST))
        assert poll(lambda: "headroom-gpu-a-gpu-1" in store.rules, timeout_seconds=10)
        t.offer(report("", ""))
        assert poll(lambda: not store.rules, timeout_seconds=10)
        assert poll(lambda: t.stats.held == 0 and t.stats.rounds == 2, timeout_seconds=10)
    finally:
        t.stop(timeout_seconds=5)
    assert t.worker.started and not t.worker.alive
