"""Paper-style table and validation-loss plot from the logs of any set of runs.

    python scripts/plot_runs.py outputs/llama_160m_* --out figures/llama_160m
    python scripts/plot_runs.py outputs/sweeps/mu_sweep/* --out figures/mu_sweep --baseline AdamW

Each argument is a run's dump folder (its ``run_info.json`` says the optimizer, H or mu_x,
lr and seed; its TensorBoard files, or W&B offline files, hold the validation losses).
Runs that differ only in the seed are averaged; for every (optimizer, H) the learning
rate with the best mean final validation loss is kept (as in the paper's tuning), and
the steps to reach the baseline's final validation loss give the speedup. Writes
``results.md`` and ``validation_loss.png`` to ``--out`` and prints the table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gpa_titan.analysis import VAL_LOSS, Setting, best_by_final_loss, plot_curves, read_curve, results_table  # noqa: E402


def describe(run_dir: str) -> tuple[str, int | None, float]:
    """(optimizer, effective H, lr) of a run, from its run_info.json."""
    path = os.path.join(run_dir, "run_info.json")
    if not os.path.exists(path):
        raise SystemExit(f"{run_dir}: no run_info.json (not a gpa_titan dump folder?)")
    opt = json.load(open(path))["config"]["optimizer"]
    name, h = opt["name"], None
    if name == "DiLoCo-AdamW":
        h = int(opt["inner_steps"])
    elif name == "GPA-AdamW":  # effective H of Table 4 (mu = 0.9), when mu_x maps to one
        h = round(math.log(0.9) / math.log(opt["mu_x"])) if 0 < opt["mu_x"] < 1 else None
    return name, h, float(opt["lr"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="dump folders of runs")
    ap.add_argument("--out", required=True)
    ap.add_argument("--baseline", default="AdamW", help="optimizer whose final loss is the target")
    ap.add_argument("--title", default="validation loss")
    a = ap.parse_args(argv)

    settings: dict[tuple, Setting] = {}
    for run in a.runs:
        curve = read_curve(run, VAL_LOSS)
        if not curve:
            print(f"skipping {run}: no validation loss in its TensorBoard or W&B files", file=sys.stderr)
            continue
        name, h, lr = describe(run)
        settings.setdefault((name, h, lr), Setting(name, h, lr)).curves.append(curve)
    if not settings:
        raise SystemExit("no runs with validation losses")
    best = best_by_final_loss(list(settings.values()))
    table, _ = results_table(best, baseline=a.baseline)
    os.makedirs(a.out, exist_ok=True)
    plot_curves(best, os.path.join(a.out, "validation_loss.png"), a.title)
    with open(os.path.join(a.out, "results.md"), "w") as f:
        f.write(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
