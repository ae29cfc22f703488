"""Table 4 of the paper: DiLoCo's (H, mu) as GPA's (mu_x, mu_y), mu_x = mu**(1/H).

    python scripts/table4.py                          # H = 1 ... 128, mu = 0.9
    python scripts/table4.py --inner-steps 24 --mu 0.8

H is an integer >= 1 and mu lies in (0, 1) (``gpa_titan/optim/table4.py`` checks both); any
other value, or a value given twice, is one error line naming the flag, with exit code 2.
"""

from __future__ import annotations

import argparse

from gpa_titan.optim.table4 import PAPER_MU, diloco_to_gpa


def _checked(flag: str, cast, check, fix: str):
    """An argparse type: ``cast`` the text, then ``check`` it with Table 4's own check (ValueError)."""

    def parse(text: str):
        try:
            value = cast(text)
            check(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is out of Table 4's domain: {fix}, e.g. {flag} "
                                             f"{'24' if flag == '--inner-steps' else PAPER_MU}") from None
        return value

    return parse


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inner-steps", nargs="+", default=[1, 4, 8, 16, 32, 64, 128],
                    type=_checked("--inner-steps", int, lambda h: diloco_to_gpa(h, PAPER_MU),
                                  "H is DiLoCo's inner steps, an integer >= 1"))
    ap.add_argument("--mu", nargs="+", default=[PAPER_MU],
                    type=_checked("--mu", float, lambda mu: diloco_to_gpa(1, mu),
                                  "mu is DiLoCo's outer momentum, a number in (0, 1)"))
    args = ap.parse_args(argv)
    for flag, values in (("--inner-steps", args.inner_steps), ("--mu", args.mu)):
        twice = [v for i, v in enumerate(values) if v in values[:i]]
        if twice:
            ap.error(f"{flag} lists {twice[0]:g} twice: the table would repeat its rows; give each value once")
    print("| H | mu | mu_x = mu^(1/H) | mu_y |")
    print("|---:|---:|---:|---:|")
    for mu in args.mu:
        for h in args.inner_steps:
            mu_x, mu_y = diloco_to_gpa(h, mu)
            print(f"| {h} | {mu} | {mu_x:.4f} | {mu_y} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
