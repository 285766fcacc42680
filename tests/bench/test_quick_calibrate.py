"""bench/quick_calibrate.py: the threshold it suggests between the noise and a 2x regression."""

from __future__ import annotations

import pytest

from bench.quick_calibrate import bound, suggest, two_digits


def test_the_suggestion_is_as_far_above_the_noise_as_below_the_regression() -> None:
    normal, injected = [2.0, 2.5, 3.0], [5.5, 6.0]
    assert bound(normal, injected) == 4.0  # twice the lowest ratio as is: below the injected
    assert suggest(normal, injected) == pytest.approx(3.5)  # sqrt(3.0 * 4.0), two digits


def test_an_injected_ratio_below_twice_the_normal_lowers_the_bound() -> None:
    assert bound([8.0, 9.0], [12.0, 13.0]) == 12.0


def test_a_measure_whose_noise_reaches_the_regression_is_too_noisy() -> None:
    assert suggest([2.0, 4.5], [5.0]) is None


def test_two_digits() -> None:
    assert [two_digits(v) for v in (10.04, 13.05, 0.4321, 123.4)] == [10, 13, 0.43, 120]
