"""Writing a comparison to a folder: ``results.md`` (the table), ``results.json`` (its rows and
whatever the caller adds) and ``validation_loss.png``."""

from __future__ import annotations

import json
import os
from collections.abc import Hashable

from .formatting import show_value
from .plots import plot_curves
from .setting import SettingRuns, distinguishing_keys
from .speedup import results_table


def results_labels(best: dict[Hashable, SettingRuns]) -> list[tuple[str, SettingRuns]]:
    """The chosen settings and their legend labels: optimizer, H, each key that tells settings of
    one optimizer apart, and the lr."""
    extra = distinguishing_keys(list(best.values()))

    def label(r: SettingRuns) -> str:
        keys = "".join(f", {k.split('.')[-1]} {show_value(r.config.get(k))}" for k in extra)
        return f"{r.label}{keys}, lr {show_value(r.lr)}"

    return [(label(r), r) for r in sorted(best.values(), key=lambda r: (r.label, [show_value(r.config.get(k))
                                                                                  for k in extra], r.lr))]


def write_report(out_dir: str, best: dict[Hashable, SettingRuns], title: str, baseline: str | None = "AdamW",
                 extra: dict | None = None) -> str:
    """Write the three files for the chosen settings (see ``results_table``; ``baseline`` None:
    no speedup columns); return the table."""
    table, rows = results_table(best, baseline=baseline)
    os.makedirs(out_dir, exist_ok=True)
    plot_curves(results_labels(best), os.path.join(out_dir, "validation_loss.png"), title)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(f"{title}\n\n{table}\n")
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump({"title": title, "baseline": baseline, "rows": rows, **(extra or {})}, f, indent=2, default=str)
    return table
