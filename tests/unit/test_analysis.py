"""Speedup arithmetic on synthetic curves."""

import pytest

from gpa_titan.analysis.speedup import (
    Setting,
    best_by_final_loss,
    mean_curve,
    results_table,
    speedup_percent,
    steps_to_reach,
)


def test_interpolates_between_evaluation_points():
    curve = {0: 5.0, 100: 4.0, 200: 3.0, 300: 2.5}
    assert steps_to_reach(curve, 3.5) == pytest.approx(150.0)
    assert steps_to_reach(curve, 3.0) == pytest.approx(200.0)
    assert steps_to_reach(curve, 2.75) == pytest.approx(250.0)
    assert steps_to_reach(curve, 6.0) == 0.0


def test_never_reached_is_reported_as_such():
    assert steps_to_reach({0: 5.0, 100: 4.0}, 3.9) is None
    assert speedup_percent(None, 1000) is None
    assert steps_to_reach({}, 1.0) is None


def test_first_crossing_counts_for_a_noisy_curve():
    assert steps_to_reach({0: 4.0, 10: 2.0, 20: 3.0, 30: 1.0}, 2.5) == pytest.approx(7.5)


def test_speedup_percent():
    assert speedup_percent(900.0, 1000.0) == pytest.approx(10.0)
    assert speedup_percent(1100.0, 1000.0) == pytest.approx(-10.0)


def test_table_uses_best_lr_mean_over_seeds_and_baseline_final_loss():
    steps = [0, 100, 200, 300, 400]
    adamw = Setting(
        "AdamW", None, 1e-3, [dict(zip(steps, [6, 4, 3.4, 3.1, 3.0])), dict(zip(steps, [6, 4, 3.4, 3.1, 3.0]))]
    )
    adamw_bad = Setting("AdamW", None, 1e-2, [dict(zip(steps, [6, 5, 4.5, 4.2, 4.0]))])
    gpa = Setting(
        "GPA-AdamW", 32, 1e-3, [dict(zip(steps, [6, 3.8, 3.2, 3.0, 2.9])), dict(zip(steps, [6, 3.8, 3.2, 2.9, 2.8]))]
    )
    never = Setting("DiLoCo-AdamW", 32, 1e-3, [dict(zip(steps, [6, 4.5, 3.9, 3.5, 3.3]))])
    best = best_by_final_loss([adamw, adamw_bad, gpa, never])
    assert best[("AdamW", None)] is adamw
    table, rows = results_table(best)
    by = {r["optimizer"]: r for r in rows}
    assert by["AdamW"]["steps_to_target"] == 400 and by["AdamW"]["speedup"] == 0
    # GPA's mean curve: 3.0 at step 300 (mean of 3.0 and 2.9 is 2.95 <= 3.0) -> crosses between 200 and 300
    gpa_mean = mean_curve(gpa.curves)
    assert gpa_mean[300] == pytest.approx(2.95)
    assert by["GPA-AdamW"]["steps_to_target"] == pytest.approx(200 + 100 * (3.2 - 3.0) / (3.2 - 2.95))
    assert by["GPA-AdamW"]["speedup"] == pytest.approx(100 * (1 - by["GPA-AdamW"]["steps_to_target"] / 400))
    assert by["DiLoCo-AdamW"]["steps_to_target"] is None
    assert "not reached" in table and "| GPA-AdamW | 32 | 0.001 | 2.8500 ± 0.0707 | 2 |" in table
