"""An AIScaler's status read as numbers for /metrics: what is there, and only that."""

from __future__ import annotations

from extender.scaler.figures import scaler_figures


def test_counts_are_read_and_what_is_missing_or_not_a_number_is_left_out() -> None:
    figures = scaler_figures(
        {
            "metadata": {"namespace": "ml", "name": "m"},
            "status": {
                "desiredReplicas": 3,
                "feasibleReplicas": True,  # not a count
                "appliedReplicas": "2",  # nor this
                "coldStart": {"p50Seconds": 12, "p90Seconds": None},
            },
        }
    )
    assert figures is not None
    assert figures.replicas == {"desiredReplicas": 3.0}
    assert (figures.cold_start_p50_seconds, figures.cold_start_p90_seconds) == (12.0, None)
    assert not figures.limited_by_gpu


def test_only_a_true_gpu_limit_counts_as_limited_by_gpu() -> None:
    def limited(status: str, reason: str) -> bool:
        condition = {"type": "ScalingLimited", "status": status, "reason": reason}
        figures = scaler_figures(
            {"metadata": {"namespace": "ml", "name": "m"}, "status": {"conditions": [condition]}}
        )
        assert figures is not None
        return figures.limited_by_gpu

    assert limited("True", "InsufficientGPUHeadroom")
    assert not limited("False", "InsufficientGPUHeadroom")
    assert not limited("True", "TooMany")  # maxReplicas, not the GPUs


def test_an_object_without_a_name_or_with_a_broken_status_is_skipped_or_read_as_empty() -> None:
    assert scaler_figures({"metadata": {"name": "m"}}) is None
    figures = scaler_figures({"metadata": {"namespace": "ml", "name": "m"}, "status": "junk"})
    assert figures is not None and figures.replicas == {} and not figures.limited_by_gpu
