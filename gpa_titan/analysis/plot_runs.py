"""Paper-style table and validation-loss plot from the logs of any set of runs (the logic of
``scripts/plot_runs.py``).

    python scripts/plot_runs.py outputs/llama_160m_* --out figures/llama_160m
    python scripts/plot_runs.py outputs/sweeps/h_sweep --out figures/h_sweep --baseline none

Each argument is a run's dump folder (the configs' ``outputs/<config name>``, Slurm's
``outputs/<job name>-<job id>``) or a sweep folder of ``scripts/sweep.py``
(``outputs/sweeps/<name>``, whose run folders are taken); its ``run_info.json`` holds the
resolved config, its TensorBoard (or W&B offline) files the validation losses.

Runs are seeds of one setting when their resolved configs agree on everything but the
seed, the optimizer keys their optimizer does not use and the keys that do not change the
math (listed in ``gpa_titan/runs.py``; ``--ignore-key`` adds more). How the
runs were grouped is printed first. Seeds of different length are refused, not averaged.
For every (optimizer, H) and everything else that differs, the learning rate with the best
mean final validation loss is kept (as in the paper's tuning). With a baseline optimizer
(``--baseline NAME``; by default AdamW when the runs include it, ``--baseline none`` for
none), the table adds the steps to reach the baseline's final validation loss and the
speedup; without one it has no such columns and says so. Writes ``results.md``,
``results.json`` and ``validation_loss.png`` to ``--out`` and prints the table last.

``--figures`` also writes the paper's Table 2 (final validation loss against H), Figure 1b
(speedup against H), Figure 3 (curves at each optimizer's best setting) and Figure 9 (GPA's
final loss over the window and mu_y), as ``table2.md/png``, ``figure1b``, ``figure3`` and
``figure9`` (those the runs allow), choosing in each cell the best of all settings there
(``gpa_titan/analysis/figures.py``); H is also given relative to the run's length
(paper-equivalent H = H x 12,208 / steps):

    python scripts/plot_runs.py outputs/sweeps/h_sweep outputs/llama_160m_adamw --out figures/h_sweep --figures
"""

from __future__ import annotations

import argparse
import os
import sys

from gpa_titan.optim.registry import unused_optimizer_keys
from gpa_titan.runs import flatten, show

from .figures import write_figures
from .grouping import Run, RunGroupingError, describe_grouping, group_runs
from .logs import VAL_LOSS, read_curve, run_config
from .report import write_report
from .setting import SettingRuns, all_but_lr, best_by_final_loss, distinguishing_keys

DEFAULT_BASELINE = "AdamW"


def run_folders(paths: list[str]) -> list[str]:
    """The run folders among ``paths``: a sweep folder (with ``runs.tsv``) stands for its runs;
    files (a sweep's ``runs.tsv`` caught by a glob) are skipped with a note."""
    out = []
    for path in paths:
        if os.path.isfile(os.path.join(path, "runs.tsv")):
            out += sorted(os.path.join(path, name) for name in os.listdir(path)
                          if os.path.isdir(os.path.join(path, name)))
        elif os.path.isdir(path):
            out.append(path)
        elif os.path.exists(path):
            print(f"skipping {path}: not a run folder", file=sys.stderr)
        else:
            raise SystemExit(f"error: {path} does not exist")
    return out


def load_runs(paths: list[str]) -> list[Run]:
    """The runs in ``paths`` (see ``run_folders``) with their flattened config and validation curve;
    a run without validation losses is skipped with a note."""
    runs = []
    for path in run_folders(paths):
        try:
            config = flatten(run_config(path))
        except FileNotFoundError as e:
            raise SystemExit(f"error: {e}") from None
        curve = read_curve(path, VAL_LOSS)
        if not curve:
            print(f"skipping {path}: no validation loss in its TensorBoard or W&B files", file=sys.stderr)
            continue
        runs.append(Run(path, config, curve))
    return runs


def choose_baseline(requested: str | None, settings: list[SettingRuns]) -> tuple[str | None, str]:
    """(the baseline optimizer or None, a sentence saying which and why)."""
    present = sorted({s.optimizer for s in settings})
    if requested is not None and requested.lower() == "none":
        return None, "No baseline (--baseline none)."
    if requested is None:
        if DEFAULT_BASELINE in present:
            return DEFAULT_BASELINE, f"Using {DEFAULT_BASELINE} as the baseline (the default; --baseline NAME or none)."
        return None, (f"No baseline: no {DEFAULT_BASELINE} runs among these (optimizers: {', '.join(present)}); "
                      "give --baseline NAME to compare against one of them.")
    if requested not in present:
        raise SystemExit(f"error: --baseline {requested}: no runs of {requested} among these; their optimizers are "
                         f"{', '.join(present)} (or use --baseline none)")
    return requested, f"Using {requested} as the baseline (--baseline)."


def main(argv: list[str] | None = None) -> int:
    """The command line of ``scripts/plot_runs.py`` (see this module's docstring)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="dump folders of runs, or sweep folders")
    ap.add_argument("--out", required=True)
    ap.add_argument("--baseline", default=None,
                    help=f"optimizer whose final loss is the target (default: {DEFAULT_BASELINE} if present; "
                         "'none': no speedup columns)")
    ap.add_argument("--ignore-key", action="append", default=[], metavar="SECTION.KEY",
                    help="also treat this config key (fnmatch pattern) as not changing the math, e.g. a data path "
                         "that differs between machines (repeatable)")
    ap.add_argument("--title", default="validation loss")
    ap.add_argument("--figures", action="store_true",
                    help="also write the paper's Table 2 and Figures 1b, 3 and 9 (markdown and PNG) to --out")
    a = ap.parse_args(argv)

    runs = load_runs(a.runs)
    if not runs:
        raise SystemExit("error: no runs with validation losses")
    try:
        groups = group_runs(runs, unused=unused_optimizer_keys, ignore=a.ignore_key)
    except RunGroupingError as e:
        raise SystemExit(f"error: {e}") from None
    print(describe_grouping(groups, a.ignore_key))
    settings = [SettingRuns.from_group(g) for g in groups]
    best = best_by_final_loss(settings, key=all_but_lr)
    print("The best lr is chosen per (optimizer, H) and every other key that differs (only optimizer.lr is tuned):")
    extra = distinguishing_keys(list(best.values()))
    for chosen in best.values():
        rivals = sorted(s.lr for s in settings if all_but_lr(s) == all_but_lr(chosen))
        label = chosen.label + "".join(f", {k}={show(chosen.config[k])}" for k in extra if k in chosen.config)
        print(f"  {label}: lr {show(chosen.lr)} (of {', '.join(show(lr) for lr in rivals)})")
    baseline, why = choose_baseline(a.baseline, settings)
    print(why)
    table = write_report(a.out, best, a.title, baseline=baseline)
    if a.figures:
        write_figures(a.out, settings, a.title, baseline=baseline or DEFAULT_BASELINE)
        written = sorted(name for name in os.listdir(a.out) if name.startswith(("table2", "figure")))
        print(f"Paper figures in {a.out}: {', '.join(written)}")
    print(table)
    return 0

