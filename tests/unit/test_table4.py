"""Table 4 of the paper: DiLoCo's (H, mu) as GPA's mu_x, its inverse, and H relative to the run's length."""

import math

import pytest

from gpa_titan.optim.table4 import (
    PAPER_STEPS,
    averaging_window,
    describe_h,
    diloco_to_gpa,
    diloco_window,
    effective_inner_steps,
    gpa_mu_x,
    h_for_run,
    mu_x_for_window,
    paper_equivalent_h,
)


def test_table_4_conversion_matches_the_paper():
    paper = {1: 0.9, 4: 0.974, 8: 0.9869, 16: 0.9934, 32: 0.9967, 64: 0.9984, 128: 0.9992}
    for h, mu_x in paper.items():
        assert round(diloco_to_gpa(h, 0.9)[0], 4) == mu_x
    with pytest.raises(ValueError):
        diloco_to_gpa(0, 0.9)


@pytest.mark.parametrize("h", [1, 4, 8, 32, 128])
def test_effective_inner_steps_inverts_the_mapping(h):
    mu_x, _ = diloco_to_gpa(h, 0.9)
    assert effective_inner_steps(mu_x, 0.9) == pytest.approx(h, rel=1e-9)
    assert effective_inner_steps(0.0) is None
    with pytest.raises(ValueError, match="mu_x"):
        effective_inner_steps(1.0)


# ---------------------------------------------------------------- H relative to the run's length
def test_the_papers_h32_is_a_2_5_percent_window_and_2_6_steps_at_1000():
    window = averaging_window(gpa_mu_x(32))
    assert window == pytest.approx(304.2, abs=0.1) and window / PAPER_STEPS == pytest.approx(0.0249, abs=1e-4)
    assert h_for_run(32, 1000) == pytest.approx(2.621, abs=1e-3)
    # the same share of the run: the window of the scaled H, relative to 1,000 steps, is about 2.5% too
    assert averaging_window(gpa_mu_x(h_for_run(32, 1000))) / 1000 == pytest.approx(window / PAPER_STEPS, rel=0.03)


@pytest.mark.parametrize("h", [0.5, 1, 2.62, 32, 128])
def test_gpa_window_is_about_h_over_minus_log_mu_plus_a_half(h):
    assert averaging_window(gpa_mu_x(h)) == pytest.approx(h / -math.log(0.9) + 0.5, rel=0.01)
    assert effective_inner_steps(gpa_mu_x(h)) == pytest.approx(h, rel=1e-9)  # fractional H invert too


def test_window_and_paper_equivalent_h_invert():
    assert mu_x_for_window(averaging_window(0.99)) == pytest.approx(0.99)
    assert mu_x_for_window(1) == 0.0
    assert paper_equivalent_h(h_for_run(64, 777), 777) == pytest.approx(64)
    assert paper_equivalent_h(3, 1000) == pytest.approx(36.624)
    assert diloco_window(3, 0.9) == pytest.approx(30) and diloco_window(8, 0.0) == 8


def test_gpa_mu_x_agrees_with_table_4_at_integer_h():
    for h in (1, 4, 8, 32, 128):
        assert gpa_mu_x(h) == diloco_to_gpa(h)[0]


@pytest.mark.parametrize("call", [lambda: gpa_mu_x(0), lambda: gpa_mu_x(4, 1.0), lambda: averaging_window(1.0),
                                  lambda: mu_x_for_window(0.5), lambda: paper_equivalent_h(2, 0),
                                  lambda: h_for_run(-1, 100), lambda: diloco_window(2, 1.0), lambda: gpa_mu_x(True)])
def test_relative_helpers_reject_bad_values(call):
    with pytest.raises(ValueError):
        call()


def test_describe_h_names_window_and_share():
    text = describe_h(3, 1000)
    assert "paper-equivalent H = 36.6" in text and "window 29 steps = 2.9% of 1,000 steps" in text
    assert "window 30 steps = 3% of 1,000 steps" in describe_h(3, 1000, optimizer="DiLoCo-AdamW")
