"""Cold start from pods: creation to gpu-ready (or Ready without the gate), measured once per
replica, the last 20 kept, p50 and p90 by nearest rank."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from extender.scaler.coldstart import MAX_SAMPLES, record, serving_after_seconds, summary
from headroom import names
from headroom.clock import format_time

T0 = 1_700_000_000.0


def replica(
    uid: str, *, serving_after: float | None, gated: bool = True, ready_after: float = 1.0
) -> dict[str, Any]:
    """A pod created at T0; its gpu-ready condition True `serving_after` seconds later (None:
    False), and Ready `ready_after` seconds after creation."""
    conditions = [
        {
            "type": "Ready",
            "status": "True",
            "lastTransitionTime": format_time(T0 + ready_after),
        }
    ]
    conditions.append(
        {
            "type": names.GPU_READY_CONDITION,
            "status": "False" if serving_after is None else "True",
            "lastTransitionTime": format_time(T0 + (serving_after or 0)),
        }
    )
    gates = [{"conditionType": names.GPU_READY_CONDITION}] if gated else []
    return {
        "metadata": {"uid": uid, "creationTimestamp": format_time(T0)},
        "spec": {"readinessGates": gates},
        "status": {"conditions": conditions},
    }


def test_a_gated_replica_serves_when_its_model_is_resident_not_when_the_container_is_ready() -> (
    None
):
    assert serving_after_seconds(replica("a", serving_after=150, ready_after=5)) == 150
    assert serving_after_seconds(replica("a", serving_after=None)) is None


def test_without_the_gate_ready_is_serving() -> None:
    assert (
        serving_after_seconds(replica("a", serving_after=None, gated=False, ready_after=42)) == 42
    )


def test_each_replica_is_measured_once_and_the_last_20_are_kept() -> None:
    samples: dict[str, float] = {}
    record(samples, [replica("a", serving_after=100)])
    record(samples, [replica("a", serving_after=999)])  # a later look does not change it
    assert samples == {"a": 100}
    record(samples, [replica(f"r{i}", serving_after=i) for i in range(25)])
    assert len(samples) == MAX_SAMPLES
    assert "a" not in samples and list(samples)[-1] == "r24"


def test_p50_and_p90_by_nearest_rank() -> None:
    cold = summary({str(i): float(s) for i, s in enumerate([120, 90, 300, 100, 110])})
    assert cold is not None
    assert (cold.p50_seconds, cold.p90_seconds, cold.replicas) == (110, 300, 5)
    assert cold.as_status() == {"p50Seconds": 110, "p90Seconds": 300, "replicas": 5}
    assert summary({}) is None


@given(st.lists(st.floats(min_value=0, max_value=3600), min_size=1, max_size=50))
def test_the_percentiles_are_samples_in_order(values: list[float]) -> None:
    cold = summary({str(i): v for i, v in enumerate(values)})
    assert cold is not None
    assert min(values) <= cold.p50_seconds <= cold.p90_seconds <= max(values)
    assert cold.p50_seconds in values and cold.p90_seconds in values
