"""The command line of ``scripts/bench_convergence.py``: its parser, and which mode runs."""

from __future__ import annotations

import argparse
import json

from gpa_titan.optim.table4 import PAPER_MU

from .arguments import (
    BPE_BASE,
    GRID_DEFAULTS,
    ArgumentError,
    at_least,
    check_arguments,
    check_data,
    check_seeds,
    csv,
    h_ok,
    in_range,
    lr_ok,
    mu_ok,
    mu_y_ok,
    optimizer_ok,
    positive,
    seed_ok,
)
from .grid import run_grid
from .tuning import run_confirm, run_study


def main(argv: list[str] | None = None, description: str | None = None) -> int:
    """Parse and check the arguments (a bad one: argparse's one error line, exit code 2), then run
    the mode: ``--study``, ``--confirm`` or the shared grid."""
    ap = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--study", metavar="SPEC.json", help="run the tuning study of this spec")
    mode.add_argument("--confirm", metavar="TUNED.json", help="run exactly these tuned settings on --data, --seeds")
    ap.add_argument("--data", required=True, help="folder with c4-train.*.json.gz and c4-validation.*.json.gz")
    ap.add_argument("--out", required=True, help="output folder (the runs, the tuning split, the tokenizer)")
    ap.add_argument("--report", help="where the study's / confirm's tables and figures go (study: <out>/report; "
                                     "confirm: <out>)")
    ap.add_argument("--tuned", help="--study: where to write the tuned settings (default <report>/tuned.json)")
    ap.add_argument("--jobs", type=at_least(1, " (runs at a time)"), default=1,
                    help="runs at a time (each on --threads-per-run CPU threads)")
    ap.add_argument("--threads-per-run", type=at_least(0, " (0: torch's default)"), default=1,
                    help="CPU threads per run (0: torch's default)")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--optimizers", type=csv(str, "--optimizers", "AdamW,GPA-AdamW", optimizer_ok), default=None,
                    help="only these optimizers (default: all the study covers); with --study the others keep their "
                         "entries in --tuned")
    ap.add_argument("--seeds", type=csv(int, "--seeds", "0,1,2", seed_ok), default=None,
                    help="grid: seeds (default 0,1); --confirm: seeds (default: the study's final seeds)")
    g = GRID_DEFAULTS
    grid = ap.add_argument_group("shared grid (without --study / --confirm)")
    grid.add_argument("--lrs", type=csv(float, "--lrs", "1e-3,3e-3", lr_ok),
                      help=f"the shared learning-rate grid (default {','.join(map(str, g['lrs']))})")
    grid.add_argument("--inner-steps", type=csv(int, "--inner-steps", "8,32", h_ok),
                      help=f"H values (GPA: mu_x = mu^(1/H); default {g['inner_steps'][0]})")
    grid.add_argument("--mu", type=in_range(mu_ok, f"--mu {PAPER_MU}"),
                      help=f"DiLoCo outer momentum; GPA's mu for Table 4 (default {g['mu']})")
    grid.add_argument("--mu-y", type=in_range(mu_y_ok, "--mu-y 0.9"), help=f"GPA mu_y (default {g['mu_y']})")
    grid.add_argument("--outer-lr", type=in_range(positive, "--outer-lr 0.75"),
                      help=f"DiLoCo outer learning rate (default {g['outer_lr']})")
    grid.add_argument("--steps", type=at_least(1), help=f"default {g['steps']}")
    grid.add_argument("--seq-len", type=at_least(1), help=f"default {g['seq_len']}")
    grid.add_argument("--batch", type=at_least(1), help=f"sequences per step (default {g['batch']})")
    grid.add_argument("--val-every", type=at_least(1), help=f"default {g['val_every']}")
    grid.add_argument("--val-batches", type=at_least(1), help=f"default {g['val_batches']}")
    grid.add_argument("--flavor", help=f"model flavor (gpa_titan.titan.models.FLAVORS; default {g['flavor']})")
    grid.add_argument("--vocab-size", type=at_least(BPE_BASE, f" (the byte-level BPE starts from {BPE_BASE} tokens)"),
                      help=f"BPE vocabulary trained on the data (default {g['vocab_size']})")
    grid.add_argument("--tokenizer-docs", type=at_least(1),
                      help=f"training documents used for the BPE (default {g['tokenizer_docs']})")
    a = ap.parse_args(argv)
    try:  # every argument is checked before anything is written
        check_arguments(a)
        if a.confirm and a.seeds is None:
            try:
                with open(a.confirm) as f:
                    a.seeds = json.load(f).get("final_seeds", [0, 1, 2])
            except (OSError, json.JSONDecodeError, AttributeError) as e:
                raise ArgumentError(f"--confirm {a.confirm}: {e}") from None
            a.seeds = check_seeds(a.seeds, f"--confirm {a.confirm}: final_seeds")
        a.data_arg, a.out_arg, a.report_arg = a.data, a.out, a.report
        a.data = check_data(a.data)
        if a.study:
            return run_study(a)
        if a.confirm:
            return run_confirm(a)
        a.seeds = a.seeds if a.seeds is not None else [0, 1]
        return run_grid(a)
    except ArgumentError as e:
        ap.error(str(e))
