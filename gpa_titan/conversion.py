"""Table 4 of arXiv 2512.17131: DiLoCo's (H, mu) as GPA's (mu_x, mu_y).

Averaging every step with rate mu_x forgets as fast as DiLoCo's outer momentum mu does
once per H steps when mu_x**H = mu, so mu_x = mu**(1/H); mu_y ~ mu.

    python -m gpa_titan.conversion                    # the table for H = 1 ... 128, mu = 0.9
    python -m gpa_titan.conversion --inner-steps 24 --mu 0.8
"""

from __future__ import annotations

import argparse


def diloco_to_gpa(inner_steps: int, mu: float) -> tuple[float, float]:
    """(mu_x, mu_y) for DiLoCo with ``inner_steps`` H and outer momentum ``mu``."""
    if inner_steps < 1:
        raise ValueError(f"inner_steps={inner_steps} must be >= 1")
    if not 0 < mu < 1:
        raise ValueError(f"mu={mu} must lie in (0, 1)")
    return mu ** (1.0 / inner_steps), mu


def main() -> None:
    ap = argparse.ArgumentParser(description="DiLoCo (H, mu) -> GPA (mu_x, mu_y), Table 4 of the paper.")
    ap.add_argument("--inner-steps", type=int, nargs="+", default=[1, 4, 8, 16, 32, 64, 128])
    ap.add_argument("--mu", type=float, nargs="+", default=[0.9])
    args = ap.parse_args()
    print("| H | mu | mu_x = mu^(1/H) | mu_y |")
    print("|---:|---:|---:|---:|")
    for mu in args.mu:
        for h in args.inner_steps:
            mu_x, mu_y = diloco_to_gpa(h, mu)
            print(f"| {h} | {mu} | {mu_x:.4f} | {mu_y} |")


if __name__ == "__main__":
    main()
