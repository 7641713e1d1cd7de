"""Bootstrap confidence intervals and percentiles."""

from __future__ import annotations

import math

from sekisho.arena.stats import bootstrap_ci, percentile


def test_degenerate_samples_have_degenerate_intervals():
    assert bootstrap_ci([1.0] * 30) == (1.0, 1.0)
    assert bootstrap_ci([0.0] * 5) == (0.0, 0.0)


def test_interval_brackets_the_mean_and_is_seeded():
    values = [1.0] * 60 + [0.0] * 40
    low, high = bootstrap_ci(values, seed=1)
    assert 0.45 < low < 0.6 < high < 0.75  # normal approx: 0.6 +- 1.96 * sqrt(.24/100) = [0.504, 0.696]
    assert bootstrap_ci(values, seed=1) == (low, high)
    assert bootstrap_ci(values, seed=2) != (low, high)


def test_more_data_narrows_the_interval():
    small = bootstrap_ci([1.0, 0.0] * 10)
    large = bootstrap_ci([1.0, 0.0] * 200)
    assert large[1] - large[0] < small[1] - small[0]


def test_empty_sample():
    low, high = bootstrap_ci([])
    assert math.isnan(low) and math.isnan(high)
    assert math.isnan(percentile([], 50))


def test_percentiles():
    latencies = [float(i) for i in range(1, 101)]
    assert percentile(latencies, 50) == 50.5
    assert percentile(latencies, 95) == 95.05
