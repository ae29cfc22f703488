"""Table 4 of arXiv 2512.17131: DiLoCo's (H, mu) as GPA's (mu_x, mu_y), and back.

Averaging every step with rate mu_x forgets as fast as DiLoCo's outer momentum mu does
once per H steps when mu_x**H = mu, so mu_x = mu**(1/H); mu_y ~ mu. The paper's GPA runs
use mu = 0.9. ``scripts/table4.py`` prints the table.
"""

from __future__ import annotations

import math

PAPER_MU = 0.9  # the outer momentum of the paper's DiLoCo runs, and the mu of its Table 4


def diloco_to_gpa(inner_steps: int, mu: float = PAPER_MU) -> tuple[float, float]:
    """(mu_x, mu_y) for DiLoCo with ``inner_steps`` H and outer momentum ``mu``."""
    if isinstance(inner_steps, bool) or not isinstance(inner_steps, int) or inner_steps < 1:
        raise ValueError(f"inner_steps={inner_steps!r} must be an integer >= 1")
    if not 0 < mu < 1:
        raise ValueError(f"mu={mu!r} must lie in (0, 1)")
    return mu ** (1.0 / inner_steps), mu


def effective_inner_steps(mu_x: float, mu: float = PAPER_MU) -> float | None:
    """The H at which DiLoCo with momentum ``mu`` corresponds to GPA's ``mu_x`` (the inverse of
    ``diloco_to_gpa``, not rounded); None for mu_x = 0 (plain AdamW: no averaging)."""
    if not 0 <= mu_x < 1:
        raise ValueError(f"mu_x={mu_x!r} must lie in [0, 1)")
    if not 0 < mu < 1:
        raise ValueError(f"mu={mu!r} must lie in (0, 1)")
    return None if mu_x == 0 else math.log(mu) / math.log(mu_x)
