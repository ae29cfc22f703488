"""Writing a comparison to a folder: ``results.md`` (the table), ``results.json`` (its rows and
whatever the caller adds) and ``validation_loss.png``."""

from __future__ import annotations

import json
import os
from typing import Any

from .plots import plot_curves
from .speedup import Setting, results_table


def write_report(out_dir: str, best: dict[Any, Setting], title: str, baseline: str | None = "AdamW",
                 extra: dict | None = None) -> str:
    """Write the three files for the chosen settings (see ``results_table``; ``baseline`` None:
    no speedup columns); return the table."""
    table, rows = results_table(best, baseline=baseline)
    os.makedirs(out_dir, exist_ok=True)
    plot_curves(best, os.path.join(out_dir, "validation_loss.png"), title)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(f"{title}\n\n{table}\n")
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump({"title": title, "baseline": baseline, "rows": rows, **(extra or {})}, f, indent=2, default=str)
    return table
