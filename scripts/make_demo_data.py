"""Generate the offline demo corpus and tokenizer (the demo config does this on first use).

    python scripts/make_demo_data.py --out assets/demo

--out must be missing, empty, or a demo folder this script made (marked by gpa_titan_demo.json);
a folder holding anything else is left as it is (an error says what it holds).
"""

from __future__ import annotations

import argparse
import sys

from gpa_titan.data.demo import build_demo_assets
from gpa_titan.data.documents import DataConfigError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="assets/demo")
    ap.add_argument("--documents", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        print(build_demo_assets(args.out, args.documents, args.seed, key="--out"))
    except DataConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
