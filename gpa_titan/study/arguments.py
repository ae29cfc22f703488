"""The arguments of ``scripts/bench_convergence.py``, checked before anything is written: argparse
types for lists and ranges that name the flag and the fix, the shared grid's defaults, and the
checks across arguments (``check_arguments``). A bad argument is an ``ArgumentError``, printed
as argparse prints its own (one line, exit code 2)."""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from typing import Any

from gpa_titan.data.documents import DataConfigError, find_shards
from gpa_titan.optim.registry import OPTIMIZER_NAMES, OPTIMIZERS
from gpa_titan.optim.table4 import PAPER_MU, diloco_to_gpa


class ArgumentError(ValueError):
    """A bad argument, found before anything is written; ``main`` prints it as argparse does (exit 2)."""


def csv(cast: Callable, flag: str, example: str, check: Callable[[Any], str | None] = lambda v: None):
    """An argparse type for a comma-separated list: refuses an empty list, an empty item, an item
    ``cast`` cannot read, an item ``check`` rejects (it returns what is wrong) and a value twice."""

    def parse(text: str) -> list:
        items = [item.strip() for item in text.split(",")]
        if not any(items):
            raise argparse.ArgumentTypeError(f"{text!r} is an empty list: give at least one value, e.g. "
                                             f"{flag} {example}")
        values: list = []
        for item in items:
            if not item:
                raise argparse.ArgumentTypeError(f"{text!r} has an empty item (a stray ','): separate the values by "
                                                 f"one ',' each, e.g. {flag} {example}")
            try:
                value = cast(item)
            except ValueError:
                value, problem = None, f"cannot be read as {cast.__name__}"
            else:
                problem = check(value)
            if problem:
                raise argparse.ArgumentTypeError(f"{item!r} {problem}; e.g. {flag} {example}")
            if value in values:
                raise argparse.ArgumentTypeError(f"{item!r} is listed twice: its runs would be the same runs (and "
                                                 f"one report row); list each value once, e.g. {flag} {example}")
            values.append(value)
        return values

    return parse


def at_least(low: int, why: str = "") -> Callable[[str], int]:
    """An argparse type for an integer >= ``low``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; give an integer >= {low}{why}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is below {low}; give an integer >= {low}{why}")
        return value

    return parse


def in_range(check: Callable[[float], str | None], example: str) -> Callable[[str], float]:
    """An argparse type for a finite number that ``check`` accepts (it returns what is wrong)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        problem = "is not a finite number" if not math.isfinite(value) else check(value)
        if problem:
            raise argparse.ArgumentTypeError(f"{text!r} {problem}; e.g. {example}")
        return value

    return parse


def positive(value: float) -> str | None:
    return None if value > 0 else "must be > 0"


def seed_ok(value: int) -> str | None:
    return None if value >= 0 else "is negative: seeds are integers >= 0"


def h_ok(value: int) -> str | None:
    return None if value >= 1 else "is not an H: inner steps are integers >= 1"


def lr_ok(value: float) -> str | None:
    return None if value > 0 and math.isfinite(value) else "is not a learning rate: give positive finite numbers"


def optimizer_ok(name: str) -> str | None:
    return None if name in OPTIMIZERS else f"is not an optimizer: choose from {','.join(OPTIMIZER_NAMES)}"


def mu_ok(value: float) -> str | None:
    try:
        diloco_to_gpa(1, value)
    except ValueError:
        return "must lie in (0, 1): DiLoCo's outer momentum, GPA's mu for Table 4 (the paper's: 0.9)"
    return None


def mu_y_ok(value: float) -> str | None:
    return None if 0 < value <= 1 else "must lie in (0, 1] (GPA's mu_y; the paper's: 0.9 or 0.8)"


def check_seeds(seeds, where: str) -> list[int]:
    """``seeds`` read from a file: a non-empty list of distinct integers >= 0."""
    if (not isinstance(seeds, list) or not seeds or len(set(map(str, seeds))) != len(seeds)
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)):
        raise ArgumentError(f"{where} = {seeds!r} is not a non-empty list of distinct integers >= 0; fix it, or "
                            "give --seeds, e.g. --seeds 0,1,2")
    return seeds


def check_data(data: str) -> str:
    data = os.path.abspath(data)
    try:
        find_shards(data, "train", key="--data")
        find_shards(data, "validation", key="--data")
    except DataConfigError as e:
        raise ArgumentError(str(e)) from None
    return data



GRID_DEFAULTS: dict[str, Any] = {  # the shared grid's own arguments (refused with --study / --confirm)
    "lrs": [1e-3, 3e-3], "inner_steps": [8], "mu": PAPER_MU, "mu_y": 0.9, "outer_lr": 0.75, "steps": 400,
    "seq_len": 128, "batch": 16, "val_every": 25, "val_batches": 8, "flavor": "small", "vocab_size": 4096,
    "tokenizer_docs": 20000,
}
BPE_BASE = 258  # the byte-level BPE's 256 bytes and its 2 special tokens


def check_arguments(a) -> None:
    """What no single argument's type can see: arguments of another mode, and relations."""
    mode = "--study" if a.study else "--confirm" if a.confirm else None
    if mode:
        given = [key for key in GRID_DEFAULTS if getattr(a, key) is not None]
        if given:
            flag = "--" + given[0].replace("_", "-")
            source = "SPEC.json's setup and grids" if a.study else "TUNED.json's setup and settings"
            raise ArgumentError(f"{flag} belongs to the shared grid (without --study / --confirm); {mode} takes its "
                                f"values from {source}, so it would be ignored: remove {flag}")
    for key, default in GRID_DEFAULTS.items():
        if getattr(a, key) is None:
            setattr(a, key, default)
    if a.study and a.seeds is not None:
        raise ArgumentError("--seeds is ignored by --study (its final seeds are the spec's final.seeds): remove "
                            "--seeds, or run --confirm TUNED.json --seeds ... afterwards")
    if a.tuned and not a.study:
        raise ArgumentError(f"--tuned {a.tuned} is where --study writes its tuned settings; without --study it "
                            "would be ignored: remove it (--confirm reads the file it is given)")
    if a.report and not mode:
        raise ArgumentError(f"--report {a.report}: the shared grid writes its report into --out {a.out}; remove "
                            "--report (it is for --study / --confirm)")
    if not mode and a.val_every > a.steps:
        raise ArgumentError(f"--val-every {a.val_every} is longer than the run (--steps {a.steps}): validation would "
                            f"run only at steps 1 and {a.steps}; give --val-every <= --steps")
