"""Turn a hyperparameter grid into runs and one Slurm array job.

    python scripts/sweep.py --config configs/llama_160m_gpa.toml --name mu_sweep \\
        --mu-x 0.9934,0.9967,0.9984 --mu-y 0.8,0.9 --lr 1e-3,3e-3 --nodes 1 --dry-run

For GPA, ``--inner-steps`` (with ``--mu``, default 0.9) is converted to mu_x = mu**(1/H)
as in Table 4; for DiLoCo it sets H itself. Writes ``outputs/sweeps/<name>/runs.tsv`` (a
header, then one line per run: its name and its command-line overrides) and submits

    sbatch --array=0-<N-1>%<parallel> --nodes=<nodes> --job-name=<name>
           --export=ALL,SWEEP_FILE=<runs.tsv> slurm/train.sbatch <config>

so that array task i trains line i into ``outputs/sweeps/<name>/<run name>``.
``--dry-run`` prints the runs and the sbatch command instead of submitting.

A sweep folder whose ``runs.tsv`` was submitted is never overwritten (its pending array
tasks read that file when they start, and its runs' dump folders would be resumed): use a
new ``--name``, remove the folder, or pass ``--force``. A dry run's ``runs.tsv`` is marked
as such (``DRY_RUN``) and may be replaced by the next dry run or the submission.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shlex
import subprocess
import tomllib

from gpa_titan.optim.table4 import PAPER_MU
from gpa_titan.titan.optimizer_registry import OPTIMIZERS


def floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v]


def ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def pairs(text: str) -> list[tuple[float, float]]:
    out = []
    for item in text.split(";"):
        b1, b2 = item.split(",")
        out.append((float(b1), float(b2)))
    return out


def build_runs(optimizer: str, grid: dict) -> list[tuple[str, list[str]]]:
    """The (name, overrides) of every point of the grid, in a fixed order."""
    axes: list[list[tuple[str, list[str]]]] = []
    if grid.get("inner_steps"):
        spec = OPTIMIZERS.get(optimizer)
        if spec is None or not spec.takes_inner_steps:
            takes_h = [name for name, s in OPTIMIZERS.items() if s.takes_inner_steps]
            raise SystemExit(f"--inner-steps needs a config of {' or '.join(takes_h)}, not {optimizer}")
        values = []
        for h in grid["inner_steps"]:
            fields = spec.inner_steps_fields(h, grid["mu"])
            args = [arg for key, value in fields.items() for arg in (f"--optimizer.{key}", f"{value:.6g}")]
            values.append((f"H{h}", args))
        axes.append(values)
    for key, flag, label in (("mu_x", "--optimizer.mu_x", "mux"), ("mu_y", "--optimizer.mu_y", "muy"),
                             ("lr", "--optimizer.lr", "lr"), ("outer_lr", "--optimizer.outer_lr", "olr")):
        if grid.get(key):
            axes.append([(f"{label}{v:g}", [flag, f"{v:g}"]) for v in grid[key]])
    if grid.get("betas"):
        axes.append([(f"b{b1:g}-{b2:g}", ["--optimizer.beta1", f"{b1:g}", "--optimizer.beta2", f"{b2:g}"])
                     for b1, b2 in grid["betas"]])
    runs = []
    for combo in itertools.product(*axes) if axes else [()]:
        name = "_".join(part for part, _ in combo) or "base"
        runs.append((name, [arg for _, args in combo for arg in args]))
    return runs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="the base TOML")
    ap.add_argument("--name", required=True, help="sweep name (folder and Slurm job name)")
    ap.add_argument("--mu-x", type=floats, help="comma-separated GPA mu_x values")
    ap.add_argument("--inner-steps", type=ints, help="comma-separated H values (GPA: mapped by Table 4)")
    ap.add_argument("--mu", type=float, default=PAPER_MU, help="DiLoCo momentum for the Table 4 mapping")
    ap.add_argument("--mu-y", type=floats, help="comma-separated GPA mu_y values")
    ap.add_argument("--lr", type=floats, help="comma-separated learning rates")
    ap.add_argument("--outer-lr", type=floats, help="comma-separated DiLoCo outer learning rates")
    ap.add_argument("--betas", type=pairs, help='semicolon-separated pairs, e.g. "0.9,0.95;0.975,0.95"')
    ap.add_argument("--nodes", type=int, default=1, help="nodes per run")
    ap.add_argument("--parallel", type=int, default=0, help="at most this many runs at once (0: no limit)")
    ap.add_argument("--out", default="outputs/sweeps", help="parent folder of the sweep folder")
    ap.add_argument("--dry-run", action="store_true", help="print what would be submitted; submit nothing")
    ap.add_argument("--force", action="store_true", help="overwrite the runs.tsv of an earlier sweep of this name")
    args = ap.parse_args(argv)

    if not os.path.isfile(args.config):
        raise SystemExit(f"--config {args.config} does not exist")
    with open(args.config, "rb") as f:
        optimizer = tomllib.load(f).get("optimizer", {}).get("name", "AdamW")
    if args.mu_x and args.inner_steps:
        raise SystemExit("give --mu-x or --inner-steps, not both (both set mu_x for GPA)")
    grid = dict(mu_x=args.mu_x, inner_steps=args.inner_steps, mu=args.mu, mu_y=args.mu_y, lr=args.lr,
                outer_lr=args.outer_lr, betas=args.betas)
    runs = build_runs(optimizer, grid)

    folder = os.path.join(args.out, args.name)
    runs_file = os.path.join(folder, "runs.tsv")
    dry_marker = os.path.join(folder, "DRY_RUN")
    if os.path.exists(runs_file) and not os.path.exists(dry_marker) and not args.force:
        raise SystemExit(
            f"error: {runs_file} already exists: sweep {args.name!r} was submitted before, and overwriting its "
            f"runs.tsv would change what its pending tasks train. Choose a new --name, remove {folder} "
            "(its runs' outputs too), or pass --force to overwrite it (runs of the same name then resume "
            "from their checkpoints)."
        )
    os.makedirs(folder, exist_ok=True)
    with open(runs_file, "w") as f:
        f.write("name\toverrides\n")
        for name, overrides in runs:
            f.write(f"{name}\t{' '.join(overrides)}\n")
    array = f"0-{len(runs) - 1}" + (f"%{args.parallel}" if args.parallel else "")
    cmd = ["sbatch", f"--array={array}", f"--nodes={args.nodes}", f"--job-name={args.name}",
           f"--export=ALL,SWEEP_FILE={runs_file}", "slurm/train.sbatch", args.config]
    print(f"{len(runs)} runs of {args.config} ({optimizer}), listed in {runs_file}:")
    for i, (name, overrides) in enumerate(runs):
        print(f"  [{i}] {name}: {' '.join(overrides)}")
    print(("would submit: " if args.dry_run else "submitting: ") + shlex.join(cmd))
    if args.dry_run:
        with open(dry_marker, "w") as f:
            f.write("runs.tsv was written by a dry run (nothing submitted); the next run of the sweep may replace it\n")
    else:
        if os.path.exists(dry_marker):
            os.remove(dry_marker)
        subprocess.run(cmd, check=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
