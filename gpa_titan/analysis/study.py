"""A tuning study in the shape of the paper's Appendix E: for each optimizer its own sequence
of phases, each sweeping a few hyperparameters on a grid while the others stay at the best
values found so far, chosen on a tuning split; then the chosen setting with several seeds.

The study is a plain JSON spec (``StudySpec.load``), so the grids are written down before any
run, and the plan is pure logic: ``method_study`` is a generator that yields the runs a phase
needs and receives their results; ``drive`` runs the plans of all optimizers at once on a
pool of workers (a phase of one optimizer never waits for another optimizer). Launching a run
is the caller's (``gpa_titan.titan.bench`` starts the trainer); nothing here imports TorchTitan.

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
import os
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from gpa_titan.optim.table4 import PAPER_MU, gpa_mu_x, h_for_run, paper_equivalent_h

# the hyperparameters ("knobs") a study may tune per optimizer; SF's beta1 is its interpolation
METHOD_KNOBS: dict[str, tuple[str, ...]] = {
    "AdamW": ("lr", "beta1", "beta2"),
    "GPA-AdamW": ("lr", "beta1", "beta2", "mu_y", "H"),
    "DiLoCo-AdamW": ("lr", "beta1", "beta2", "H", "outer_lr", "outer_momentum"),
    "ScheduleFree-AdamW": ("lr", "beta1", "beta2"),
}
KNOB_LABELS = {"lr": "lr", "beta1": "b1-", "beta2": "b2-", "mu_y": "muy", "H": "H", "outer_lr": "olr",
               "outer_momentum": "omom"}
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


def _clean(value: float) -> float | int:
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
        return _clean(factor * current)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{value!r} is not a number")
    return _clean(value)


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
    parts = [f"{KNOB_LABELS[k]}{_clean(knobs[k]):g}" for k in METHOD_KNOBS[method]]
    return "_".join([method, *parts])


def optimizer_fields(method: str, knobs: dict[str, float], setup: dict[str, Any]) -> dict[str, Any]:
    """The ``[optimizer]`` values of a setting (what the trainer is given), ``name`` included."""
    fields: dict[str, Any] = {"name": method, "lr": knobs["lr"], "beta1": knobs["beta1"], "beta2": knobs["beta2"],
                              "eps": setup["eps"], "weight_decay": setup["weight_decay"]}
    if method == "GPA-AdamW":
        fields |= {"mu_x": float(f"{gpa_mu_x(knobs['H'], setup['mu']):.8g}"), "mu_y": knobs["mu_y"]}
    elif method == "DiLoCo-AdamW":
        h = knobs["H"]
        if float(h) != int(h) or h < 1:
            raise ValueError(f"DiLoCo-AdamW: H = {h!r} must be an integer >= 1")
        fields |= {"inner_steps": int(h), "outer_lr": knobs["outer_lr"], "outer_momentum": knobs["outer_momentum"]}
    elif method == "ScheduleFree-AdamW":
        fields |= {"warmup_steps": 0}
    return fields


def load_tuned_settings(path: str) -> dict:
    """A study's tuned settings (``--tuned``, e.g. ``docs/results/tuned.json``); a clear error if
    the file is missing or is not one."""
    try:
        with open(path) as f:
            tuned = json.load(f)
    except (OSError, ValueError) as e:
        raise StudySpecError(f"{path}: {e}; tuned settings are written by scripts/bench_convergence.py "
                             "--study SPEC --tuned FILE") from None
    if not isinstance(tuned, dict) or not isinstance(tuned.get("methods"), dict) or "setup" not in tuned:
        raise StudySpecError(f"{path}: not a study's tuned settings (no \"methods\" or \"setup\"); write it with "
                             "scripts/bench_convergence.py --study SPEC --tuned FILE")
    return tuned


def knobs_for_run_length(method: str, knobs: dict[str, float], tuned_steps: int, steps: int) -> dict[str, float]:
    """``knobs`` tuned on ``tuned_steps``-step runs, for a run of ``steps`` steps: H keeps its share
    of the run (through the paper-equivalent H of ``gpa_titan.optim.table4``); DiLoCo's H is
    rounded to an integer of at least 1. The other knobs do not depend on the run's length here."""
    if "H" not in knobs:
        return dict(knobs)
    h = h_for_run(paper_equivalent_h(knobs["H"], tuned_steps), steps)
    if method == "DiLoCo-AdamW":
        h = max(1, round(h))
    return knobs | {"H": h}


@dataclass(frozen=True)
class RunRequest:
    """One run: a setting of one optimizer with one seed, on the tuning split or the real data."""

    method: str
    knobs_items: tuple[tuple[str, float], ...]
    seed: int
    stage: str  # "tuning" | "final"

    @classmethod
    def of(cls, method: str, knobs: dict[str, float], seed: int, stage: str) -> RunRequest:
        return cls(method, tuple((k, knobs[k]) for k in METHOD_KNOBS[method]), seed, stage)

    @property
    def knobs(self) -> dict[str, float]:
        return dict(self.knobs_items)

    @property
    def name(self) -> str:
        return f"{knobs_name(self.method, self.knobs)}_seed{self.seed}"

    @property
    def key(self) -> str:
        return f"{self.stage}/{self.name}"


@dataclass
class RunResult:
    """What a finished run gave: its final validation loss (inf if it diverged) and curve."""

    final: float
    curve: dict[int, float] = field(default_factory=dict)
    diverged: bool = False
    wall_s: float = 0.0
    cpu_s: float = 0.0
    launched: bool = False  # run by this invocation (False: found finished on disk)


@dataclass
class PhaseRecord:
    method: str
    name: str
    grid: dict[str, list]
    candidates: list[dict]  # {"run", "knobs", "final", "diverged", "incumbent", "extension" (if so)}
    chosen: dict[str, float]
    chosen_final: float

    def to_json(self) -> dict:
        return {"method": self.method, "phase": self.name, "grid": self.grid, "candidates": self.candidates,
                "chosen": self.chosen, "chosen_tuning_loss": self.chosen_final}


@dataclass
class MethodOutcome:
    method: str
    chosen: dict[str, float]
    phases: list[PhaseRecord]
    finals: dict[int, RunResult]  # seed -> result on the real data
    final_requests: list[RunRequest]


def method_study(spec: MethodSpec, seed: int, final_seeds: Iterable[int],
                 on_phase: Callable[[PhaseRecord], None] | None = None
                 ) -> Generator[list[RunRequest], dict[str, RunResult], MethodOutcome]:
    """The phases of one optimizer: yields each phase's runs (tuning split, ``seed``) and
    receives ``{run key: result}``; then yields the chosen setting's final runs (one per
    seed of ``final_seeds``) and returns the outcome."""
    current = dict(spec.start)
    incumbent: dict | None = None
    records = []
    for phase in spec.phases:
        requests = [RunRequest.of(spec.name, knobs, seed, "tuning") for knobs in expand(phase, current)]
        results = yield requests
        candidates = [{"run": r.name, "knobs": r.knobs, "final": results[r.key].final,
                       "diverged": results[r.key].diverged, "incumbent": False} for r in requests]
        if phase.extend and len(requests) > 1:
            candidates += yield from _extend(phase, requests, candidates, seed)
        if incumbent is not None and incumbent["run"] not in {c["run"] for c in candidates}:
            candidates.append({**incumbent, "incumbent": True})
        best = min(candidates, key=lambda c: c["final"])  # the first of equals, in grid order
        if math.isinf(best["final"]):
            raise RuntimeError(f"{spec.name}: every run of phase {phase.name!r} diverged "
                               f"({', '.join(c['run'] for c in candidates)}); lower its grid")
        current, incumbent = dict(best["knobs"]), {k: v for k, v in best.items() if k != "incumbent"}
        record = PhaseRecord(spec.name, phase.name, phase.grid, candidates, dict(current), best["final"])
        records.append(record)
        if on_phase is not None:
            on_phase(record)
    final_requests = [RunRequest.of(spec.name, current, s, "final") for s in final_seeds]
    results = yield final_requests
    return MethodOutcome(spec.name, current, records, {r.seed: results[r.key] for r in final_requests},
                         final_requests)


def _extend(phase: Phase, requests: list[RunRequest], candidates: list[dict], seed: int):
    """Runs beyond the edge of a one-key grid while the edge is the best so far: from the
    smallest (largest) value, divide (multiply) by the ratio of the two smallest (largest)
    values, at most ``phase.extend`` times per side, stopping at the first run that is not
    better. Yields the runs one at a time; returns their candidate records (``"extension"``)."""
    key = next(iter(phase.grid))
    added: list[dict] = []
    values = sorted({r.knobs[key] for r in requests})
    for side in (0, -1):
        edge, inner = values[side], values[1 if side == 0 else -2]
        factor = inner / edge
        for _ in range(phase.extend):
            everything = candidates + added
            best = min(everything, key=lambda c: c["final"])
            if best["knobs"][key] != edge or math.isinf(best["final"]):
                break
            knobs = dict(best["knobs"])
            knobs[key] = _clean(edge / factor)
            request = RunRequest.of(requests[0].method, knobs, seed, "tuning")
            results = yield [request]
            result = results[request.key]
            added.append({"run": request.name, "knobs": request.knobs, "final": result.final,
                          "diverged": result.diverged, "incumbent": False, "extension": True})
            edge = knobs[key]
    return added


def confirm_plan(method: str, knobs: dict[str, float], seeds: Iterable[int]
                 ) -> Generator[list[RunRequest], dict[str, RunResult], MethodOutcome]:
    """The final runs only (``--confirm``): one per seed of a fixed setting."""
    requests = [RunRequest.of(method, knobs, s, "final") for s in seeds]
    results = yield requests
    return MethodOutcome(method, dict(knobs), [], {r.seed: results[r.key] for r in requests}, requests)


def drive(plans: dict[str, Generator], execute: Callable[[RunRequest], RunResult], jobs: int = 1
          ) -> dict[str, MethodOutcome]:
    """Run the plans (name -> generator from ``method_study`` / ``confirm_plan``) with ``jobs``
    runs at a time. A plan's next phase starts as soon as its runs are done; queued runs go in
    the order of ``plans`` (put the longest plan first), then first come first served. A run
    requested twice is run once. ``execute`` must be thread-safe; an exception in it stops the
    study after the runs in flight end."""
    if jobs < 1:
        raise ValueError(f"jobs={jobs!r} must be >= 1")
    order = {name: i for i, name in enumerate(plans)}
    results: dict[str, RunResult] = {}
    waiting: dict[str, list[RunRequest]] = {}
    outcomes: dict[str, MethodOutcome] = {}
    queue: list[tuple[int, int, RunRequest]] = []
    queued: set[str] = set()
    in_flight: dict[Future, RunRequest] = {}
    counter = itertools.count()

    def advance(name: str, sent: dict | None) -> None:
        try:
            requests = plans[name].send(sent)
        except StopIteration as stop:
            outcomes[name] = stop.value
            waiting.pop(name, None)
            return
        waiting[name] = requests
        for r in requests:
            if r.key not in results and r.key not in queued:
                queued.add(r.key)
                queue.append((order[name], next(counter), r))

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for name in plans:
            advance(name, None)
        while True:
            progressed = True
            while progressed:  # plans whose runs are all known move on (maybe several phases)
                progressed = False
                for name, requests in list(waiting.items()):
                    if all(r.key in results for r in requests):
                        advance(name, {r.key: results[r.key] for r in requests})
                        progressed = True
            queue.sort(key=lambda item: item[:2])
            while queue and len(in_flight) < jobs:
                _, _, request = queue.pop(0)
                in_flight[pool.submit(execute, request)] = request
            if not in_flight:
                break
            done, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
            for future in done:
                request = in_flight.pop(future)
                error = future.exception()
                if error is not None:
                    queue.clear()
                    wait(list(in_flight))
                    raise error
                results[request.key] = future.result()
    if waiting:
        raise RuntimeError(f"plans left waiting: {sorted(waiting)}")
    return outcomes


class StudyState:
    """The study's progress on disk (``study_state.json``): every phase's runs and choice, written
    after each phase, and the chosen settings. Rerunning the study recomputes it from the
    finished runs, so it is a record, not an input."""

    def __init__(self, path: str, spec: StudySpec) -> None:
        self.path, self.spec = path, spec
        self.phases: dict[str, list[dict]] = {m.name: [] for m in spec.methods}
        self.chosen: dict[str, dict] = {}

    def record(self, record: PhaseRecord) -> None:
        self.phases[record.method].append(record.to_json())
        self.save()

    def save(self) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"spec": self.spec.raw, "phases": self.phases, "chosen": self.chosen}, f, indent=1, default=str)
        os.replace(tmp, self.path)
