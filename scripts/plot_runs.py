"""Paper-style table and validation-loss plot from the logs of any set of runs.

    python scripts/plot_runs.py outputs/llama_160m_* --out figures/llama_160m
    python scripts/plot_runs.py outputs/sweeps/mu_sweep/* --out figures/mu_sweep --baseline AdamW

Each argument is a run's dump folder (its ``run_info.json`` says the optimizer, H or mu_x,
lr and seed; its TensorBoard files, or W&B offline files, hold the validation losses).
Runs that differ only in the seed are averaged; for every (optimizer, H) the learning
rate with the best mean final validation loss is kept (as in the paper's tuning), and
the steps to reach the baseline's final validation loss give the speedup. Writes
``results.md``, ``results.json`` and ``validation_loss.png`` to ``--out`` and prints the table.
"""

from __future__ import annotations

import argparse
import sys

from gpa_titan.analysis.logs import VAL_LOSS, read_curve, run_config
from gpa_titan.analysis.report import write_report
from gpa_titan.analysis.speedup import Setting, best_by_final_loss
from gpa_titan.optim.table4 import effective_inner_steps


def describe(run_dir: str) -> tuple[str, int | None, float]:
    """(optimizer, effective H, lr) of a run, from its run_info.json."""
    try:
        opt = run_config(run_dir)["optimizer"]
    except FileNotFoundError as e:
        raise SystemExit(str(e)) from None
    name, h = opt["name"], None
    if name == "DiLoCo-AdamW":
        h = int(opt["inner_steps"])
    elif name == "GPA-AdamW" and opt["mu_x"] > 0:  # effective H of Table 4 (mu = 0.9)
        h = round(effective_inner_steps(opt["mu_x"]))
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
    print(write_report(a.out, best_by_final_loss(list(settings.values())), a.title, baseline=a.baseline))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
