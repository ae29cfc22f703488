"""How the analysis writes values and tables: one value formatter and one markdown table."""

from __future__ import annotations

from typing import Any

MISSING = "—"  # a cell or setting without a value


def show_value(value: Any, digits: int = 6) -> str:
    """A value in a table, legend or sentence: None as ``—``; a float to ``digits`` significant
    digits (``{:g}`` at the default 6: 0.003, 0.9967), written out with thousands separators
    from 10**digits up (3,052 rather than 3.05e+03 at digits=3); anything else as ``str``."""
    if value is None:
        return MISSING
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 10**digits else f"{value:.{digits}g}"
    return str(value)


def markdown_table(header: list[str], align: str, rows: list[list[str]]) -> list[str]:
    """The lines of a markdown table; ``align`` is its separator row (e.g. ``|---|---:|``)."""
    return ["| " + " | ".join(header) + " |", align, *("| " + " | ".join(cells) + " |" for cells in rows)]
