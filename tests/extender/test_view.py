"""The cluster view: reports and bound pods become node snapshots, with every kind of claim."""

from __future__ import annotations

from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from extender.view import ClusterView
from headroom.demand import GpuDemand
from headroom.fit import Fit, PodClaim, Reason, fit, summarize
from kubeapi.cache import DELETED, WatchEvent
from tests.extender.builders import GI, NOW, gpunode, node, pod


def check(view: ClusterView, name: str, demand: GpuDemand) -> Fit | Reason:
    return fit(demand, view.snapshot(name), now_unix_seconds=NOW, staleness_seconds=90)


TWENTY_SHARED = GpuDemand(1, 20 * GI, shared=True)


def loaded(*pods: dict[str, object]) -> ClusterView:
    view = ClusterView()
    view.load(
        gpunodes=[gpunode("n1", [80]), gpunode("n2", [24])],
        nodes=[node("n1"), node("n2"), node("cordoned", unschedulable=True)],
        pods=pods,
    )
    return view


def test_bound_pods_are_claims_and_pending_ones_are_not() -> None:
    view = loaded(pod("a", node_name="n1", assigned="GPU-n1-0"), pod("b"))
    assert [c.uid for c in view.snapshot("n1").claims] == ["a"]
    assert view.snapshot("n1").claims[0].gpu_uuids == ("GPU-n1-0",)
    assert check(view, "n1", GpuDemand(1, 60 * GI, shared=True)) == Fit(("GPU-n1-0",))
    assert isinstance(check(view, "n1", GpuDemand(1, 61 * GI, shared=True)), Reason)


def test_finished_and_deleted_pods_release_their_gpus_and_say_so() -> None:
    view = loaded(pod("a", node_name="n1", memory="80Gi", assigned="GPU-n1-0"))
    heard: list[tuple[str, str]] = []
    view.listeners.append(lambda n, why: heard.append((n, why)))
    assert isinstance(check(view, "n1", TWENTY_SHARED), Reason)
    finished = pod("a", node_name="n1", memory="80Gi", assigned="GPU-n1-0", phase="Succeeded")
    view.apply_pod(WatchEvent("MODIFIED", finished))
    assert check(view, "n1", TWENTY_SHARED) == Fit(("GPU-n1-0",))
    assert heard == [("n1", "a pod holding GPUs went away")]
    view.apply_pod(
        WatchEvent("ADDED", pod("b", node_name="n1", memory="70Gi", assigned="GPU-n1-0"))
    )
    view.apply_pod(WatchEvent(DELETED, pod("b", node_name="n1")))
    assert check(view, "n1", TWENTY_SHARED) == Fit(("GPU-n1-0",))


def test_inflight_binds_count_until_the_binding_lands_or_they_expire() -> None:
    clock = [0.0]
    view = ClusterView(inflight_ttl_seconds=30, monotonic=lambda: clock[0])
    view.load(gpunodes=[gpunode("n1", [80])], nodes=[node("n1")], pods=[])
    view.reserve("n1", PodClaim("x", GpuDemand(1, 70 * GI, shared=True), ("GPU-n1-0",)))
    assert isinstance(check(view, "n1", TWENTY_SHARED), Reason)
    assert view.reservations() == 1
    # The Binding lands: the pod's own claim replaces the in-flight one (not counted twice).
    view.apply_pod(
        WatchEvent("MODIFIED", pod("x", node_name="n1", memory="70Gi", assigned="GPU-n1-0"))
    )
    assert view.inflight("x") is None
    assert view.reservations() == 1
    view.reserve("n1", PodClaim("y", GpuDemand(1, 5 * GI, shared=True), ("GPU-n1-0",)))
    assert isinstance(check(view, "n1", TWENTY_SHARED), Reason)
    clock[0] = 31.0  # never landed: it expires
    assert check(view, "n1", GpuDemand(1, 10 * GI, shared=True)) == Fit(("GPU-n1-0",))


def test_a_report_showing_more_free_memory_notifies_and_a_bad_one_is_a_reason() -> None:
    view = ClusterView()
    heard: list[str] = []
    view.listeners.append(lambda n, why: heard.append(why))
    view.apply_gpunode(WatchEvent("ADDED", gpunode("n1", [80], used_gi=70)))
    view.apply_gpunode(WatchEvent("MODIFIED", gpunode("n1", [80], used_gi=70, age_seconds=0)))
    view.apply_gpunode(WatchEvent("MODIFIED", gpunode("n1", [80], used_gi=10)))
    assert heard == [
        "its GPU report shows more free memory",
        "its GPU report shows more free memory",
    ]  # new node, then freed memory
    broken = gpunode("n1", [80])
    broken["status"]["schemaVersion"] = 99
    view.apply_gpunode(WatchEvent("MODIFIED", broken))
    error = view.report_error("n1")
    assert error is not None and "status.schemaVersion" in error
    assert view.snapshot("n1").report is None


def test_schedulable_nodes_leave_out_cordoned_and_unreported_ones() -> None:
    view = loaded()
    view.apply_gpunode(WatchEvent("ADDED", gpunode("cordoned", [80])))
    view.apply_node(WatchEvent("ADDED", node("no-report")))
    assert view.schedulable_nodes() == ["n1", "n2"]


def test_a_pod_with_a_bad_annotation_counts_as_one_whole_gpu() -> None:
    view = loaded(pod("weird", node_name="n2", memory="lots"))
    assert isinstance(check(view, "n2", TWENTY_SHARED), Reason)


def test_a_restarted_view_rebuilt_from_the_cluster_is_the_same() -> None:
    pods = [
        pod("a", node_name="n1", assigned="GPU-n1-0"),
        pod("b", node_name="n2", gpus=1, shared=False, memory=None),
    ]
    incremental = loaded()
    for p in pods:
        incremental.apply_pod(WatchEvent("ADDED", p))
    rebuilt = loaded(*pods)
    for name in ("n1", "n2"):
        assert incremental.snapshot(name) == rebuilt.snapshot(name)


def test_summaries_come_in_order_with_the_errors_of_the_nodes_that_have_one() -> None:
    view = loaded()
    broken = gpunode("n2", [24])
    broken["status"]["schemaVersion"] = 99
    view.apply_gpunode(WatchEvent("MODIFIED", broken))
    found, errors = view.summaries(["n2", "n1", "unknown", "n1"])
    assert [s.report.node_name if s.report else None for s in found] == [None, "n1", None, "n1"]
    assert list(errors) == ["n2"]
    assert "status.schemaVersion" in errors["n2"]
    assert view.summaries(["n1"])[1] == {}


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.lists(st.sampled_from(["n1", "n2", "n3", "n4"]), max_size=6).map(tuple),
            st.tuples(st.sampled_from(["n1", "n2", "n3", "n4"]), st.integers(0, 80)),
        ),
        max_size=12,
    )
)
def test_summaries_are_always_the_current_ones_whatever_was_asked_before(
    steps: list[tuple[str, ...] | tuple[str, int]],
) -> None:
    """Asked again (the same nodes, or some of them in order: prioritize after filter) or after a
    node changed, the view answers what it would answer asked afresh."""
    view = ClusterView()
    view.load(
        gpunodes=[gpunode(n, [80]) for n in ("n1", "n2", "n3")],
        nodes=[node(n) for n in ("n1", "n2", "n3")],
        pods=[],
    )
    last: list[str] = []
    for step in steps:
        if len(step) == 2 and isinstance(step[1], int):  # a node's report changes
            view.apply_gpunode(WatchEvent("MODIFIED", gpunode(str(step[0]), [80], used_gi=step[1])))
            continue
        for asked in (list(map(str, step)), last[::2], last):
            found, _ = view.summaries(asked, after_filter=True)
            assert [id(s) for s in found] == [id(view.summary(n)) for n in asked]
        last = list(map(str, step))


def test_summarize_all_makes_every_known_nodes_summary_so_requests_make_none() -> None:
    view = loaded()
    with mock.patch("extender.view.summarize", wraps=summarize) as made:
        view.summarize_all()
        assert sorted(c.args[0].name for c in made.call_args_list) == ["cordoned", "n1", "n2"]
        view.summaries(["n1", "n2", "cordoned"])
        assert made.call_count == 3
