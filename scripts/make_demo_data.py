"""Generate the offline demo corpus and tokenizer (the demo config does this on first use).

    python scripts/make_demo_data.py --out assets/demo
"""

from __future__ import annotations

import argparse

from gpa_titan.data.demo import build_demo_assets


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="assets/demo")
    ap.add_argument("--documents", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    print(build_demo_assets(args.out, args.documents, args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
