"""Table 4 of arXiv 2512.17131: DiLoCo's (H, mu) as GPA's (mu_x, mu_y), and back.

Averaging every step with rate mu_x forgets as fast as DiLoCo's outer momentum mu does
once per H steps when mu_x**H = mu, so mu_x = mu**(1/H); mu_y ~ mu. The paper's GPA runs
use mu = 0.9. ``scripts/table4.py`` prints the table.
"""

from __future__ import annotations

import math

PAPER_MU = 0.9  # the outer momentum of the paper's DiLoCo runs, and the mu of its Table 4
# GPA's mu_y for the paper's Llama runs: Section 3.1 keeps "mu_y ~ mu" with mu = 0.9 (its Table 3
# sweeps mu_y over [0.8, 0.999]); GPAAdamW's default.
PAPER_MU_Y = 0.9


def _check_mu(mu: float) -> None:
    if not 0 < mu < 1:
        raise ValueError(f"mu={mu!r} must lie in (0, 1)")


def diloco_to_gpa(inner_steps: int, mu: float = PAPER_MU) -> tuple[float, float]:
    """(mu_x, mu_y) for DiLoCo with ``inner_steps`` H and outer momentum ``mu``."""
    if isinstance(inner_steps, bool) or not isinstance(inner_steps, int) or inner_steps < 1:
        raise ValueError(f"inner_steps={inner_steps!r} must be an integer >= 1")
    return gpa_mu_x(inner_steps, mu), mu


def effective_inner_steps(mu_x: float, mu: float = PAPER_MU) -> float | None:
    """The H at which DiLoCo with momentum ``mu`` corresponds to GPA's ``mu_x`` (the inverse of
    ``diloco_to_gpa``, not rounded); None for mu_x = 0 (plain AdamW: no averaging)."""
    if not 0 <= mu_x < 1:
        raise ValueError(f"mu_x={mu_x!r} must lie in [0, 1)")
    _check_mu(mu)
    return None if mu_x == 0 else math.log(mu) / math.log(mu_x)


# ---------------------------------------------------------------- H relative to the run's length
#
# The paper's H values belong to runs of a given length (Llama-160M: 12,208 steps). What an H
# means for the optimizer is how long its averaging lasts compared with the whole run: GPA's x
# is an exponential average of z over about 1 / (1 - mu_x) steps, and DiLoCo's outer momentum
# mu averages pseudo-gradients of H steps each over about 1 / (1 - mu) outer steps, i.e. over
# H / (1 - mu) steps. With Table 4 (mu_x = mu**(1/H)) the two agree: 1 / (1 - mu**(1/H)) is
# about H / -ln(mu) + 1/2 = 9.5 H + 0.5 steps for mu = 0.9, against DiLoCo's 10 H.
#
# A run of T steps "means the same thing" as the paper's run when H / T is the same, so the
# paper-equivalent H of an H in a T-step run is H * PAPER_STEPS / T. The paper's H = 32 is a
# window of 304 steps, 2.5% of its 12,208 steps; in a 1,000-step run the same fraction is
# H = 2.6 (mu_x = 0.9606, a 25-step window).

PAPER_STEPS = 12208  # the Llama-160M runs of the paper's Table 2 and Figures 1 and 3 (Table 3)


def _check_positive(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0 or math.isinf(value):
        raise ValueError(f"{name}={value!r} must be a positive number")


def gpa_mu_x(inner_steps: float, mu: float = PAPER_MU) -> float:
    """Table 4's mu_x = mu**(1/H) for any positive, not necessarily integer, H (GPA has no
    inner loop, so a fractional H, e.g. a paper H scaled to a shorter run, is meaningful)."""
    _check_positive("inner_steps", inner_steps)
    _check_mu(mu)
    return mu ** (1.0 / inner_steps)


def averaging_window(mu_x: float) -> float:
    """How many steps GPA's x averages z over: 1 / (1 - mu_x) (the weights (1 - mu_x) mu_x**k
    of an exponential average sum to 1 over about that many of the latest iterates)."""
    if not 0 <= mu_x < 1:
        raise ValueError(f"mu_x={mu_x!r} must lie in [0, 1)")
    return 1.0 / (1.0 - mu_x)


def mu_x_for_window(window: float) -> float:
    """The mu_x whose averaging window is ``window`` steps (>= 1; 1 is mu_x = 0, plain AdamW)."""
    _check_positive("window", window)
    if window < 1:
        raise ValueError(f"window={window!r} must be at least 1 step")
    return 1.0 - 1.0 / window


def diloco_window(inner_steps: float, mu: float = PAPER_MU) -> float:
    """How many steps DiLoCo's outer momentum averages over: H / (1 - mu)."""
    _check_positive("inner_steps", inner_steps)
    if not 0 <= mu < 1:
        raise ValueError(f"mu={mu!r} must lie in [0, 1)")
    return inner_steps / (1.0 - mu)


def paper_equivalent_h(inner_steps: float, steps: int, paper_steps: int = PAPER_STEPS) -> float:
    """The H of a ``paper_steps``-step run that is the same fraction of its run as
    ``inner_steps`` is of a ``steps``-step run: H * paper_steps / steps."""
    _check_positive("inner_steps", inner_steps)
    _check_positive("steps", steps)
    return inner_steps * paper_steps / steps


def h_for_run(paper_h: float, steps: int, paper_steps: int = PAPER_STEPS) -> float:
    """The inverse of ``paper_equivalent_h``: the paper's H scaled to a ``steps``-step run."""
    _check_positive("paper_h", paper_h)
    _check_positive("steps", steps)
    return paper_h * steps / paper_steps


def describe_h(inner_steps: float, steps: int, mu: float = PAPER_MU, optimizer: str = "GPA-AdamW") -> str:
    """``inner_steps`` in words, relative to a ``steps``-step run: its paper-equivalent H and the
    averaging window (GPA: 1/(1 - mu**(1/H)); DiLoCo: H/(1 - mu)) in steps and as a share of the run."""
    window = diloco_window(inner_steps, mu) if optimizer == "DiLoCo-AdamW" else averaging_window(
        gpa_mu_x(inner_steps, mu))
    return (f"H = {inner_steps:g} (paper-equivalent H = {paper_equivalent_h(inner_steps, steps):.3g} at "
            f"{PAPER_STEPS:,} steps; window {window:.3g} steps = {100 * window / steps:.2g}% of {steps:,} steps)")


MAPPING_NOTE = (
    "Effective H: DiLoCo's H is its number of inner steps; GPA's is the H of Table 4, "
    "H = ln(mu) / ln(mu_x) with mu = 0.9 (mu_x = 0.9^(1/H)). GPA's x averages z over a window of "
    "1/(1 - mu_x) steps (about 9.5 H); DiLoCo's outer momentum mu averages over H/(1 - mu) steps (10 H at mu = 0.9). "
    "To compare runs of different length, H is also given as the paper-equivalent H = H x 12,208 / T "
    "(T: the run's steps; 12,208: the paper's Llama-160M runs), the H with the same share of the run: "
    "the paper's H = 32 is a 304-step window, 2.5% of its run, which at T = 1,000 steps is H = 2.6."
)
