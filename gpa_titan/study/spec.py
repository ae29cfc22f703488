"""A tuning study's spec, in the shape of the paper's Appendix E: for each optimizer its own
sequence of phases, each sweeping a few hyperparameters on a grid while the others stay at the
best values found so far, chosen on a tuning split; then the chosen setting with several seeds.

The study is a plain JSON spec (``StudySpec.load``), so the grids are written down before any
run. A setting is a dict of *knobs*: lr, beta1, beta2, the optimizer's own config fields
(``gpa_titan.optim.registry``), with the field that H sets replaced by ``H``;
``optimizer_fields`` turns it into the ``[optimizer]`` values the trainer is given. The plan
is ``planner.py``'s; launching a run is ``launcher.py``'s.

Spec (all numbers are floats unless said otherwise)::

    {"name": "peps_cpu", "description": "...",
     "setup": {"flavor": "debug", "steps": 1000, "seq_len": 128, "batch": 8, "vocab_size": 1024, ...},
     "tuning": {"fraction": 0.05, "seed": 0},
     "final": {"seeds": [0, 1, 2]},
     "methods": {"GPA-AdamW": {
         "start": {"lr": 0.008, "beta1": 0.9, "beta2": 0.95, "mu_y": 0.6, "H": 3},
         "phases": [{"name": "lr", "grid": {"lr": [0.004, 0.008]}},
                    {"name": "mu_y x window", "grid": {"mu_y": [0.2, 0.9], "H": [1, 10]}},
                    {"name": "lr again", "grid": {"lr": ["x0.5", "x1", "x2"]}}]}}}

A phase's grid is the product of its keys' values; a string ``"x<k>"`` is ``k`` times the
value chosen so far; a key naming several hyperparameters (``"beta1,beta2"``) takes a list
of tuples (``[[0.8, 0.95], [0.9, 0.99]]``), for grids that are not products. A phase of one
hyperparameter with ``"extend": N`` goes on past an edge of its grid when the edge is best
(e.g. lr x0.5 again), at most N more runs per side, until a run is worse. Each phase
keeps the best of its runs and the previous phase's choice (so a phase never makes the
choice worse), by final validation loss on the tuning split;
a diverged run counts as infinitely bad. ``H`` is DiLoCo's number of inner steps (an integer)
or, for GPA, Table 4's effective H (mu_x = mu**(1/H), any positive number).
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field
from typing import Any

from gpa_titan.optim.registry import OPTIMIZERS, STUDIED_OPTIMIZERS, OptimizerSpec
from gpa_titan.optim.table4 import PAPER_MU, h_for_run, paper_equivalent_h

ADAMW_KNOBS = ("lr", "beta1", "beta2")  # every optimizer's (Schedule-Free's beta1 is its interpolation)
# a knob's label in run names, in the order of the names; a knob without one is named by itself, after these
KNOB_LABELS = {"lr": "lr", "beta1": "b1-", "beta2": "b2-", "mu_y": "muy", "H": "H", "outer_lr": "olr",
               "outer_momentum": "omom", "momentum": "mom"}


def knobs_of(spec: OptimizerSpec) -> tuple[str, ...]:
    """The hyperparameters ("knobs") a study may tune for an optimizer: AdamW's, then its own
    fields with the one H sets named ``H``, less those studies hold fixed; in name order."""
    own = ["H" if f == spec.h_field else f for f in spec.fields if f not in spec.fixed_in_studies]
    knobs = [*ADAMW_KNOBS, *own]
    return tuple(sorted(knobs, key=lambda k: (list(KNOB_LABELS).index(k) if k in KNOB_LABELS else len(KNOB_LABELS),
                                              knobs.index(k))))


# the optimizers the study covers (the registry's ``in_study``) and their knobs
METHOD_KNOBS: dict[str, tuple[str, ...]] = {name: knobs_of(OPTIMIZERS[name]) for name in STUDIED_OPTIMIZERS}
# the run's setup (the same for every run of a study), with defaults
SETUP_DEFAULTS: dict[str, Any] = {
    "flavor": "debug", "steps": 1000, "seq_len": 128, "batch": 8, "vocab_size": 1024, "tokenizer_docs": 20000,
    "val_every": 50, "val_batches": 32, "weight_decay": 0.1, "eps": 1e-8, "mu": PAPER_MU,
}
INT_SETUP = ("steps", "seq_len", "batch", "vocab_size", "tokenizer_docs", "val_every", "val_batches")


class StudySpecError(ValueError):
    """A study spec that cannot be run; the message names the key and the fix."""


@dataclass(frozen=True)
class Phase:
    name: str
    grid: dict[str, list]
    extend: int = 0  # single-key phases: at most this many further runs beyond an edge optimum, per side


@dataclass
class MethodSpec:
    name: str
    start: dict[str, float]
    phases: list[Phase]


@dataclass
class StudySpec:
    name: str
    setup: dict[str, Any]
    methods: list[MethodSpec]
    tuning_fraction: float = 0.05
    tuning_seed: int = 0
    final_seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    description: str = ""
    raw: dict = field(default_factory=dict)

    @classmethod
    def load(cls, path: str) -> StudySpec:
        with open(path) as f:
            try:
                data = json.load(f)
            except json.JSONDecodeError as e:
                raise StudySpecError(f"{path}: not JSON ({e})") from None
        return cls.from_dict(data, where=path)

    @classmethod
    def from_dict(cls, data: dict, where: str = "spec") -> StudySpec:
        def fail(message: str):
            raise StudySpecError(f"{where}: {message}")

        if not isinstance(data, dict):
            fail("must be a JSON object")
        unknown = set(data) - {"name", "description", "setup", "tuning", "final", "methods"}
        if unknown:
            fail(f"unknown key(s) {sorted(unknown)}")
        setup = dict(SETUP_DEFAULTS)
        for key, value in (data.get("setup") or {}).items():
            if key not in SETUP_DEFAULTS:
                fail(f"setup.{key} is not a setup key; known: {sorted(SETUP_DEFAULTS)}")
            setup[key] = value
        for key in INT_SETUP:
            if isinstance(setup[key], bool) or not isinstance(setup[key], int) or setup[key] < 1:
                fail(f"setup.{key} = {setup[key]!r} must be an integer >= 1")
        if setup["val_every"] > setup["steps"]:
            fail(f"setup.val_every = {setup['val_every']} is longer than the run ({setup['steps']} steps)")
        tuning = data.get("tuning") or {}
        fraction = tuning.get("fraction", 0.05)
        if not isinstance(fraction, int | float) or not 0 < fraction < 1:
            fail(f"tuning.fraction = {fraction!r} must lie in (0, 1)")
        seeds = (data.get("final") or {}).get("seeds", [0, 1, 2])
        if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
            fail(f"final.seeds = {seeds!r} must be a non-empty list of integers")
        methods_data = data.get("methods")
        if not isinstance(methods_data, dict) or not methods_data:
            fail("methods must map optimizer names to {start, phases}")
        methods = []
        for name, m in methods_data.items():
            if name not in METHOD_KNOBS:
                fail(f"methods: {name!r} is not one of {list(METHOD_KNOBS)}")
            knobs = METHOD_KNOBS[name]
            start = dict(m.get("start") or {})
            missing = [k for k in knobs if k not in start]
            extra = [k for k in start if k not in knobs]
            if missing or extra:
                fail(f"methods.{name}.start must give exactly {list(knobs)} (missing {missing}, unknown {extra})")
            for key, value in start.items():
                if isinstance(value, bool) or not isinstance(value, int | float):
                    fail(f"methods.{name}.start.{key} = {value!r} must be a number")
            phases = []
            for i, p in enumerate(m.get("phases") or []):
                pname = p.get("name") or f"phase {i + 1}"
                grid = p.get("grid") or {}
                if not grid:
                    fail(f"methods.{name}.phases[{i}] ({pname}) has an empty grid")
                for key, values in grid.items():
                    parts = key.split(",")
                    for part in parts:
                        if part not in knobs:
                            fail(f"methods.{name}.phases[{i}] ({pname}): {part!r} is not a hyperparameter of {name}; "
                                 f"tunable: {list(knobs)}")
                    if not isinstance(values, list) or not values:
                        fail(f"methods.{name}.phases[{i}] ({pname}).{key} must be a non-empty list")
                    for v in values:
                        items = v if len(parts) > 1 else [v]
                        if not isinstance(items, list) or len(items) != len(parts):
                            fail(f"methods.{name}.phases[{i}] ({pname}).{key}: {v!r} must be a list of {len(parts)} "
                                 "values (one per name of the key)")
                        try:
                            for item in items:
                                resolve(item, 1.0)
                        except ValueError as e:
                            fail(f"methods.{name}.phases[{i}] ({pname}).{key}: {e}")
                extend = p.get("extend", 0)
                if isinstance(extend, bool) or not isinstance(extend, int) or extend < 0:
                    fail(f"methods.{name}.phases[{i}] ({pname}).extend = {extend!r} must be an integer >= 0")
                if extend and len(grid) != 1:
                    fail(f"methods.{name}.phases[{i}] ({pname}): extend needs a grid of one hyperparameter")
                if extend and "," in next(iter(grid)):
                    fail(f"methods.{name}.phases[{i}] ({pname}): extend needs a grid of one hyperparameter")
                phases.append(Phase(pname, {k: list(v) for k, v in grid.items()}, extend))
            methods.append(MethodSpec(name, start, phases))
        return cls(name=str(data.get("name") or "study"), setup=setup, methods=methods, tuning_fraction=float(fraction),
                   tuning_seed=int(tuning.get("seed", 0)), final_seeds=list(seeds),
                   description=str(data.get("description") or ""), raw=data)

    def method(self, name: str) -> MethodSpec:
        return next(m for m in self.methods if m.name == name)


def clean_value(value: float) -> float | int:
    """A grid value as written in names and configs: 6 significant digits (2 * 0.004 is 0.008)."""
    out = float(f"{value:.6g}")
    return int(out) if out.is_integer() and abs(out) < 1e6 else out


def resolve(value: Any, current: float) -> float | int:
    """A grid value: a number, or ``"x<k>"`` for ``k`` times ``current``."""
    if isinstance(value, str):
        if not value.startswith("x"):
            raise ValueError(f"{value!r} is neither a number nor 'x<factor>' (a multiple of the current value)")
        try:
            factor = float(value[1:])
        except ValueError:
            raise ValueError(f"{value!r}: the factor after 'x' is not a number") from None
        if not factor > 0:
            raise ValueError(f"{value!r}: the factor must be positive")
        return clean_value(factor * current)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{value!r} is not a number")
    return clean_value(value)


def expand(phase: Phase, current: dict[str, float]) -> list[dict[str, float]]:
    """The settings of a phase: ``current`` with each point of the grid, in grid order, without repeats."""
    keys = list(phase.grid)
    out, seen = [], set()
    for combo in itertools.product(*(phase.grid[k] for k in keys)):
        knobs = dict(current)
        for key, value in zip(keys, combo):
            parts = key.split(",")
            values = value if len(parts) > 1 else [value]
            knobs.update({part: resolve(v, current[part]) for part, v in zip(parts, values)})
        key = json.dumps(knobs, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(knobs)
    return out


def knobs_name(method: str, knobs: dict[str, float]) -> str:
    """A file-name-safe, unique name of a setting: ``GPA-AdamW_lr0.008_b1-0.9_b2-0.95_muy0.6_H3``."""
    parts = [f"{KNOB_LABELS.get(k, k)}{clean_value(knobs[k]):g}" for k in METHOD_KNOBS[method]]
    return "_".join([method, *parts])


def optimizer_fields(method: str, knobs: dict[str, float], setup: dict[str, Any]) -> dict[str, Any]:
    """The ``[optimizer]`` values of a setting (what the trainer is given), ``name`` included: the
    knobs, the setup's eps and weight decay, the fields H sets (the registry's mapping with the
    setup's mu, floats to 8 significant digits as on a command line) and, for fields a study
    holds fixed, the registry's ``fixed_in_studies`` value (the optimizer's default otherwise).
    ``ValueError`` for an H the optimizer cannot take."""
    spec = OPTIMIZERS[method]
    fields: dict[str, Any] = {"name": method, "lr": knobs["lr"], "beta1": knobs["beta1"], "beta2": knobs["beta2"],
                              "eps": setup["eps"], "weight_decay": setup["weight_decay"]}
    by_h = spec.h_fields(knobs["H"], setup["mu"]) if spec.takes_inner_steps else {}
    for name in spec.fields:
        if name in by_h:
            value = by_h[name]
            fields[name] = float(f"{value:.8g}") if isinstance(value, float) else value
        else:
            fields[name] = knobs[name] if name in knobs else spec.fixed_in_studies.get(name, spec.default(name))
    return fields


def knobs_for_run_length(method: str, knobs: dict[str, float], tuned_steps: int, steps: int) -> dict[str, float]:
    """``knobs`` tuned on ``tuned_steps``-step runs, for a run of ``steps`` steps: H keeps its share
    of the run (through the paper-equivalent H of ``gpa_titan.optim.table4``); DiLoCo's H is
    rounded to an integer of at least 1. The other knobs do not depend on the run's length here."""
    if "H" not in knobs:
        return dict(knobs)
    h = h_for_run(paper_equivalent_h(knobs["H"], tuned_steps), steps)
    if OPTIMIZERS[method].whole_h:
        h = max(1, round(h))
    return knobs | {"H": h}


