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
as such (``DRY_RUN``) and may be replaced by the next dry run or the submission; so is one
whose ``sbatch`` failed (the marker goes only once sbatch has taken the array).

Every argument is checked before anything is written: a list with no value, an empty item,
a value twice or a value that is not a number; ``--nodes`` and ``--parallel``; and every
run's ``[optimizer]`` values (the config's, then the run's) with the trainer's own checks,
so that no task fails at start-up. An error is one line naming the flag, the value and the
fix, with exit code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import math
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from typing import NamedTuple

from gpa_titan.optim import HyperparameterError
from gpa_titan.optim.registry import EXTRA_FIELDS, H_OPTIMIZERS, OPTIMIZERS, get_optimizer_spec, owners_text, toml_key
from gpa_titan.optim.table4 import PAPER_MU, diloco_to_gpa
from gpa_titan.titan.job_config import ConfigError, validate_optimizer_config
from gpa_titan.titan.settings_check import SettingsError, check_settings, job_config_class, load_toml

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # a folder name and a Slurm job name, no spaces or slashes
NOT_SUBMITTED = "runs.tsv was written by a dry run (nothing submitted); the next run of the sweep may replace it\n"
SBATCH_FAILED = "runs.tsv was written but sbatch failed (nothing submitted); the next run of the sweep may replace it\n"


class SweepError(ValueError):
    """An argument that would give a wrong or failing sweep; the message names the flag, the value and the fix."""


def fmt(value: float) -> str:
    """``value`` as run names and overrides write it: ``:g`` where that is exact, else the
    shortest exact form, so two different values never print (and train) as one."""
    short = f"{value:g}"
    return short if float(short) == value else repr(float(value))


def number(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def pair(text: str) -> tuple[float, float]:
    parts = text.split(",")
    if len(parts) != 2:
        raise ValueError(text)
    return number(parts[0].strip()), number(parts[1].strip())


def scalar(flag: str, cast: Callable, what: str, example: str) -> Callable[[str], float | int]:
    """An argparse type for one ``what`` (``cast`` raises ValueError), naming the fix."""

    def parse(text: str):
        try:
            return cast(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}; e.g. {flag} {example}") from None

    return parse


def listed(flag: str, cast: Callable, what: str, example: str, sep: str = ",") -> Callable[[str], list]:
    """An argparse type for a ``sep``-separated list of ``what`` (``cast`` raises ValueError):
    refuses an empty list, an empty item, an unparseable item and the same value twice."""

    def parse(text: str) -> list:
        items = [item.strip() for item in text.split(sep)]
        if not any(items):
            raise argparse.ArgumentTypeError(
                f"{text!r} is an empty list: give at least one value, e.g. {flag} {example}")
        values, seen = [], {}
        for item in items:
            if not item:
                raise argparse.ArgumentTypeError(
                    f"{text!r} has an empty item (a stray {sep!r}): separate the values by one {sep!r} each, "
                    f"e.g. {flag} {example}")
            try:
                value = cast(item)
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"{item!r} is not {what}: give {sep!r}-separated values, e.g. {flag} {example}") from None
            if value in seen:
                raise argparse.ArgumentTypeError(
                    f"{seen[value]!r} and {item!r} are the same value twice: their runs would get one name and "
                    f"share one dump folder; list each value once, e.g. {flag} {example}")
            seen[value] = item
            values.append(value)
        return values

    return parse


class Run(NamedTuple):  # a NamedTuple: tests load this script without registering it as a module
    """One point of the grid: its name, its command-line overrides, and the ``[optimizer]``
    values it sets, each with the flag and value that set it."""

    name: str
    overrides: list[str]
    fields: dict
    origins: dict  # [optimizer] key -> (flag, value as given)


def build_runs(optimizer: str, grid: dict) -> list[Run]:
    """Every point of the grid, in a fixed order; ``SweepError`` when two values of an axis
    would train the same run or a flag sets a value the optimizer does not use."""
    spec = get_optimizer_spec(optimizer)
    axes: list[list[Run]] = []  # one-field runs per axis, combined below
    if grid.get("inner_steps"):
        if not spec.takes_inner_steps:
            raise SweepError(f"--inner-steps needs a config of {' or '.join(H_OPTIMIZERS)}; this config trains "
                             f"{optimizer}, which has no H: remove --inner-steps or sweep another config")
        values = []
        for h in grid["inner_steps"]:
            exact = spec.h_fields(h, grid["mu"])
            texts = {key: str(value) if isinstance(value, int) else f"{value:.6g}" for key, value in exact.items()}
            args = [arg for key, text in texts.items() for arg in (f"--optimizer.{key}", text)]
            fields = {key: type(exact[key])(text) for key, text in texts.items()}  # the values as written
            values.append(Run(f"H{h}", args, fields, {key: ("--inner-steps", str(h)) for key in fields}))
        axes.append(values)
    for key, flag, label in (("mu_x", "--mu-x", "mux"), ("mu_y", "--mu-y", "muy"), ("lr", "--lr", "lr"),
                             ("outer_lr", "--outer-lr", "olr")):
        if grid.get(key):
            axes.append([Run(f"{label}{fmt(v)}", [f"--optimizer.{key}", fmt(v)], {key: v}, {key: (flag, fmt(v))})
                         for v in grid[key]])
    if grid.get("betas"):
        axes.append([Run(f"b{fmt(b1)}-{fmt(b2)}", ["--optimizer.beta1", fmt(b1), "--optimizer.beta2", fmt(b2)],
                         {"beta1": b1, "beta2": b2},
                         dict.fromkeys(("beta1", "beta2"), ("--betas", f"{fmt(b1)},{fmt(b2)}")))
                     for b1, b2 in grid["betas"]])
    for axis in axes:
        (flag, _), key = next(iter(axis[0].origins.values())), next(iter(axis[0].fields))
        owners = EXTRA_FIELDS.get(key)
        if owners is not None and spec not in owners:
            raise SweepError(f"{flag} sets [optimizer] {key}, which only {owners_text(key)} uses, but this config "
                             f"trains {optimizer}: every run would train the same thing. Remove {flag}, or sweep a "
                             f"{owners_text(key)} config")
        for a, b in itertools.combinations(axis, 2):
            if a.overrides == b.overrides:
                raise SweepError(f"{flag} {a.origins[key][1]} and {b.origins[key][1]} both give "
                                 f"{' '.join(a.overrides)} (as written to runs.tsv): the two runs would train the "
                                 f"same thing; keep one of them")
    runs = []
    for combo in itertools.product(*axes) if axes else [()]:
        runs.append(Run("_".join(part.name for part in combo) or "base",
                        [arg for part in combo for arg in part.overrides],
                        {k: v for part in combo for k, v in part.fields.items()},
                        {k: v for part in combo for k, v in part.origins.items()}))
    names = [run.name for run in runs]
    if len(set(names)) != len(names):  # cannot happen with distinct axis values; never write such a sweep
        twice = sorted({n for n in names if names.count(n) > 1})
        raise SweepError(f"two runs would be named {twice[0]!r} and share one dump folder; give distinct values")
    return runs


def base_config(config: str):
    """The config as the trainer reads it (TorchTitan's defaults, then the TOML), or
    ``SweepError`` for a config the trainer would refuse at start-up."""
    if not os.path.isfile(config):
        raise SweepError(f"--config {config}: no such file; give a TOML config, e.g. --config "
                         "configs/llama_160m_gpa.toml")
    try:
        check_settings(["--job.config_file", config])
        values, _ = load_toml(config)
        cls = job_config_class(values["job"]["custom_config_module"], config)
    except SettingsError as e:
        raise SweepError(f"--config {config}: {e}") from None
    from torchtitan.config import ConfigManager

    return ConfigManager()._dict_to_dataclass(cls, values)  # what ConfigManager.parse_args builds from the TOML


def out_of_range(run: Run, key: str, value, requirement: str, optimizer: str, config: str) -> SweepError:
    """The error for a bad ``[optimizer] key`` of ``run``: naming the flag that set it, else the config."""
    if key in run.origins:
        flag, text = run.origins[key]
        return SweepError(f"{flag} {text}: [optimizer] {key} = {value!r} is out of range for {optimizer}: it must be "
                          f"{requirement}; give {flag} values in that range (the run would fail when it starts)")
    return SweepError(f"--config {config}: [optimizer] {key} = {value!r} is out of range for {optimizer}: it must be "
                      f"{requirement}; fix it in the config or sweep it (every run would fail when it starts)")


def check_runs(runs: list[Run], cfg, config: str) -> None:
    """Every run's ``[optimizer]`` (the config's, then the run's values) through the trainer's
    checks; ``SweepError`` naming the flag (or the config key) of the first bad value."""
    name = cfg.optimizer.name
    spec = OPTIMIZERS[name]
    steps = cfg.training.steps
    for run in runs:
        opt = dataclasses.replace(cfg.optimizer, **run.fields)
        if not (opt.lr > 0 and math.isfinite(opt.lr)):
            raise out_of_range(run, "lr", opt.lr, "a positive finite number (a learning rate of 0 trains nothing)",
                               name, config)
        try:
            spec.validate(opt)
        except HyperparameterError as e:
            raise out_of_range(run, toml_key(e), e.value, e.requirement, name, config) from None
        try:
            validate_optimizer_config(opt)
        except ConfigError as e:
            raise SweepError(f"--config {config}: {e}") from None
        if name == "DiLoCo-AdamW" and opt.inner_steps > steps:
            raise out_of_range(run, "inner_steps", opt.inner_steps, f"at most [training] steps = {steps} (else "
                               "DiLoCo's outer step never runs)", name, config)


def check_arguments(args) -> None:
    if not NAME.fullmatch(args.name) or args.name in (".", ".."):
        raise SweepError(f"--name {args.name!r} is not usable as a folder and Slurm job name: use letters, digits, "
                         "'.', '_' and '-' (no spaces or '/'), e.g. --name mu_sweep")
    if args.nodes < 1:
        raise SweepError(f"--nodes {args.nodes}: every run needs at least one node; give --nodes 1 or more")
    if args.parallel < 0:
        raise SweepError(f"--parallel {args.parallel}: give how many runs may train at once (>= 1), or 0 for no "
                         "limit")
    below_one = [h for h in args.inner_steps or [] if h < 1]
    if below_one:
        raise SweepError(f"--inner-steps {below_one[0]}: H is a number of inner steps, an integer >= 1; give values "
                         "such as --inner-steps 8,32")
    if args.mu_x and args.inner_steps:
        raise SweepError("--mu-x and --inner-steps both set GPA's mu_x: give one of them")
    if args.mu is not None:
        try:
            diloco_to_gpa(1, args.mu)
        except ValueError as e:
            raise SweepError(f"--mu {args.mu:g}: {e}; give DiLoCo's outer momentum for the Table 4 mapping, "
                             f"e.g. --mu {PAPER_MU}") from None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="the base TOML")
    ap.add_argument("--name", required=True, help="sweep name (folder and Slurm job name)")
    ap.add_argument("--mu-x", type=listed("--mu-x", number, "a finite number", "0.9934,0.9967"),
                    help="comma-separated GPA mu_x values")
    ap.add_argument("--inner-steps", type=listed("--inner-steps", int, "a whole number", "8,32"),
                    help="comma-separated H values (GPA: mapped by Table 4)")
    ap.add_argument("--mu", type=scalar("--mu", number, "a finite number", str(PAPER_MU)), default=None,
                    help=f"DiLoCo momentum for the Table 4 mapping of --inner-steps to GPA's mu_x (default {PAPER_MU})")
    ap.add_argument("--mu-y", type=listed("--mu-y", number, "a finite number", "0.8,0.9"),
                    help="comma-separated GPA mu_y values")
    ap.add_argument("--lr", type=listed("--lr", number, "a finite number", "1e-3,3e-3"),
                    help="comma-separated learning rates")
    ap.add_argument("--outer-lr", type=listed("--outer-lr", number, "a finite number", "0.5,0.75"),
                    help="comma-separated DiLoCo outer learning rates")
    ap.add_argument("--betas", type=listed("--betas", pair, "a pair beta1,beta2", '"0.9,0.95;0.975,0.95"', sep=";"),
                    help='semicolon-separated pairs, e.g. "0.9,0.95;0.975,0.95"')
    ap.add_argument("--nodes", type=scalar("--nodes", int, "a whole number", "1"), default=1, help="nodes per run")
    ap.add_argument("--parallel", type=scalar("--parallel", int, "a whole number", "4"), default=0,
                    help="at most this many runs at once (0: no limit)")
    ap.add_argument("--out", default="outputs/sweeps", help="parent folder of the sweep folder")
    ap.add_argument("--dry-run", action="store_true", help="print what would be submitted; submit nothing")
    ap.add_argument("--force", action="store_true", help="overwrite the runs.tsv of an earlier sweep of this name")
    args = ap.parse_args(argv)

    try:  # every argument and every run's values are checked before anything is written
        check_arguments(args)
        cfg = base_config(args.config)
        optimizer = cfg.optimizer.name
        try:
            spec = get_optimizer_spec(optimizer)
        except KeyError as e:
            raise SweepError(f"--config {args.config}: {e.args[0]}") from None
        if args.mu is not None and not (args.inner_steps and spec.takes_inner_steps
                                        and spec.h_fields(1, 0.5) != spec.h_fields(1, PAPER_MU)):
            raise SweepError(f"--mu {args.mu:g} is used only to map --inner-steps to GPA's mu_x, which this sweep "
                             f"({optimizer}{'' if args.inner_steps else ', no --inner-steps'}) does not do: remove "
                             "--mu (DiLoCo's outer momentum is [optimizer] outer_momentum in the config)")
        grid = dict(mu_x=args.mu_x, inner_steps=args.inner_steps, mu=PAPER_MU if args.mu is None else args.mu,
                    mu_y=args.mu_y, lr=args.lr, outer_lr=args.outer_lr, betas=args.betas)
        runs = build_runs(optimizer, grid)
        check_runs(runs, cfg, args.config)
    except SweepError as e:
        ap.error(str(e))

    folder = os.path.join(args.out, args.name)
    runs_file = os.path.join(folder, "runs.tsv")
    dry_marker = os.path.join(folder, "DRY_RUN")
    if os.path.exists(runs_file) and not os.path.exists(dry_marker) and not args.force:
        ap.error(
            f"{runs_file} already exists: sweep {args.name!r} was submitted before, and overwriting its "
            f"runs.tsv would change what its pending tasks train. Choose a new --name, remove {folder} "
            "(its runs' outputs too), or pass --force to overwrite it (runs of the same name then resume "
            "from their checkpoints)."
        )
    os.makedirs(folder, exist_ok=True)
    with open(dry_marker, "w") as f:  # until sbatch has taken the array, the sweep counts as not submitted
        f.write(NOT_SUBMITTED if args.dry_run else SBATCH_FAILED)
    with open(runs_file, "w") as f:
        f.write("name\toverrides\n")
        for run in runs:
            f.write(f"{run.name}\t{' '.join(run.overrides)}\n")
    array = f"0-{len(runs) - 1}" + (f"%{args.parallel}" if args.parallel else "")
    cmd = ["sbatch", f"--array={array}", f"--nodes={args.nodes}", f"--job-name={args.name}",
           f"--export=ALL,SWEEP_FILE={runs_file}", "slurm/train.sbatch", args.config]
    print(f"{len(runs)} runs of {args.config} ({optimizer}), listed in {runs_file}:")
    for i, run in enumerate(runs):
        print(f"  [{i}] {run.name}: {' '.join(run.overrides)}")
    print(("would submit: " if args.dry_run else "submitting: ") + shlex.join(cmd))
    if not args.dry_run:
        try:
            subprocess.run(cmd, check=True)
        except (OSError, subprocess.CalledProcessError) as e:
            print(f"error: sbatch failed ({e}); nothing was submitted, and the next run of this sweep may replace "
                  f"{runs_file}", file=sys.stderr)
            return 1
        os.remove(dry_marker)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
