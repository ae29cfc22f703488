"""Table 4 of the paper: DiLoCo's (H, mu) as GPA's (mu_x, mu_y), mu_x = mu**(1/H).

    python scripts/table4.py                          # H = 1 ... 128, mu = 0.9
    python scripts/table4.py --inner-steps 24 --mu 0.8
"""

from __future__ import annotations

import argparse

from gpa_titan.optim.table4 import PAPER_MU, diloco_to_gpa


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inner-steps", type=int, nargs="+", default=[1, 4, 8, 16, 32, 64, 128])
    ap.add_argument("--mu", type=float, nargs="+", default=[PAPER_MU])
    args = ap.parse_args(argv)
    print("| H | mu | mu_x = mu^(1/H) | mu_y |")
    print("|---:|---:|---:|---:|")
    for mu in args.mu:
        for h in args.inner_steps:
            mu_x, mu_y = diloco_to_gpa(h, mu)
            print(f"| {h} | {mu} | {mu_x:.4f} | {mu_y} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
