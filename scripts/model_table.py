"""Print the README's table of model flavors: shapes and parameter counts.

    python scripts/model_table.py
"""

from __future__ import annotations

import argparse

from gpa_titan.titan.models import model_table


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    print(model_table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
