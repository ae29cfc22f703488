"""Convergence benchmark and tuning study: AdamW, GPA-AdamW, DiLoCo-AdamW, ScheduleFree-AdamW.

Every run is this repo's trainer (``python -m gpa_titan.train``) on a folder in C4's on-disk
format, with the paper's schedule (linear warmup over 10% of the steps, cosine to 0), one
CPU thread per run, ``--jobs`` runs at a time; a run already finished in ``--out`` is not
repeated, so an interrupted command continues where it stopped. The tokenizer is a byte-level
BPE trained on the data's training split (nothing is downloaded). Three modes:

1. A tuning study (``--study SPEC.json``), in the shape of the paper's Appendix E: for each
   optimizer its own phases (e.g. lr; then GPA's mu_y x window, DiLoCo's H, outer lr and
   momentum, Schedule-Free's interpolation; then betas; then lr again), each phase keeping
   the best so far, all chosen by the final validation loss on a *tuning split* carved from
   the training documents (``gpa_titan/data/tuning_split.py``); then each chosen setting with
   the spec's final seeds on the real data, reported on its validation split. Writes the
   study's state after every phase (``<out>/study_state.json``), the tuned settings
   (``--tuned``, default ``<report>/tuned.json``), and to ``--report``: ``study.md`` (every
   phase, grid and run), the paper's Table 2, Figures 1b and 9 from the tuning runs, Figure 3
   and the comparison table from the final runs (markdown and PNG); prints the table last.

       python scripts/bench_convergence.py --study docs/results/study_spec.json --data ../shared/data/peps \\
           --out runs/study_peps --report docs/results/peps_study --tuned docs/results/tuned.json --jobs 2

2. ``--confirm TUNED.json``: exactly the settings stored there (setup and per-optimizer
   ``[optimizer]`` values) on any ``--data`` for ``--seeds``; writes ``confirm.md``,
   ``figure3.md/png`` and ``confirm.json`` to ``--report`` (default ``<out>``) and prints the
   comparison table last (optimizer, H, settings, final validation loss mean ± std, steps to
   AdamW's final validation loss, speedup):

       python scripts/bench_convergence.py --confirm docs/results/tuned.json --data ../shared/data/peps \\
           --seeds 0,1,2 --out runs/confirm_peps --jobs 2

3. Without either: a shared grid (``--lrs`` x ``--inner-steps`` x ``--seeds`` for every
   optimizer), the best lr per (optimizer, H) by final validation loss, compared with AdamW's;
   writes ``results.md``, ``results.json``, ``validation_loss.png``:

       python scripts/bench_convergence.py --data ../shared/data/peps --out runs/peps --jobs 2

H: DiLoCo's inner steps; for GPA Table 4's H (mu_x = 0.9^(1/H)). Outputs also give H relative
to the run's length (the paper-equivalent H = H x 12,208 / steps, and the averaging window as
a share of the run; ``gpa_titan/optim/table4.py``).

Arguments are checked before anything is written: an empty list, an empty item, a value
twice, a value out of range (seeds >= 0, lrs > 0, H >= 1, ...), or an argument of another
mode (a grid setting with --study / --confirm, --seeds with --study) is one error line
naming the flag, with exit code 2.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from gpa_titan.analysis.figures import MAPPING_NOTE, Point, comparison_table, describe_point_h, write_figures
from gpa_titan.analysis.logs import VAL_LOSS, read_tensorboard
from gpa_titan.analysis.report import write_report
from gpa_titan.analysis.speedup import Setting, best_by_final_loss
from gpa_titan.analysis.study import (
    METHOD_KNOBS,
    SETUP_DEFAULTS,
    MethodOutcome,
    RunRequest,
    StudySpec,
    StudySpecError,
    StudyState,
    confirm_plan,
    drive,
    load_tuned_settings,
    method_study,
    optimizer_fields,
)
from gpa_titan.data.documents import DataConfigError, find_shards
from gpa_titan.data.tuning_split import carve_tuning_split
from gpa_titan.optim.table4 import PAPER_MU, diloco_to_gpa
from gpa_titan.titan.bench import BenchError, Launcher, check_fields, ensure_tokenizer, launch, optimizer_cli, run_env
from gpa_titan.titan.optimizer_registry import OPTIMIZER_NAMES, OPTIMIZERS
from gpa_titan.titan.run_args import short_run_args

TUNED_VERSION = 1


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


def log(message: str) -> None:
    print(message, flush=True)


# ------------------------------------------------------------------------------------- helpers
def check_data(data: str) -> str:
    data = os.path.abspath(data)
    try:
        find_shards(data, "train", key="--data")
        find_shards(data, "validation", key="--data")
    except DataConfigError as e:
        raise ArgumentError(str(e)) from None
    return data


def points_of(outcome_requests: list[tuple[RunRequest, dict]], launcher: Launcher) -> list[Point]:
    """One ``Point`` per setting (seeds together) from finished requests (diverged runs count as inf)."""
    by_setting: dict[str, Point] = {}
    for request, fields in outcome_requests:
        result = launcher.results[request.key]
        key = f"{request.stage}/{request.method}/{json.dumps(request.knobs, sort_keys=True)}"
        settings = {k: v for k, v in fields.items() if k != "name"}
        point = by_setting.setdefault(key, Point(request.method, settings, launcher.setup["steps"], [], []))
        point.curves.append({} if result.diverged else result.curve)
        point.runs.append(launcher.dump(request))
    return list(by_setting.values())


def timing_line(launcher: Launcher, started: float) -> str:
    results = list(launcher.results.values())
    launched = [r for r in results if r.launched]
    cpu = sum(r.cpu_s for r in results)
    ratio = max((r.cpu_s / r.wall_s for r in results if r.wall_s > 0), default=0.0)
    return (f"{len(results)} runs ({len(launched)} launched by this invocation, {time.time() - started:.0f} s wall); "
            f"all runs together: {cpu / 60:.1f} CPU-minutes, {sum(r.wall_s for r in results) / 60:.1f} run-minutes; "
            f"the busiest run used {ratio:.2f} CPU-seconds per second (1 thread per run)")


def tokenizer_and_launcher(a, setup: dict, data_for_stage: dict[str, str]) -> Launcher:
    os.makedirs(a.out, exist_ok=True)
    tokenizer = ensure_tokenizer(a.data, a.out, setup["vocab_size"], setup["tokenizer_docs"])
    return Launcher(a.out, data_for_stage, tokenizer, setup, device=a.device,
                    threads_per_run=None if a.threads_per_run == 0 else a.threads_per_run, log=log)


def setup_line(setup: dict, data: str) -> str:
    s = setup
    tokens = s["steps"] * s["batch"] * s["seq_len"]
    return (f"{s['flavor']} Llama, {s['vocab_size']}-token BPE, {s['steps']:,} steps x {s['batch']} x {s['seq_len']} "
            f"tokens = {tokens / 1e6:.2f}M tokens, warmup 10% then cosine to 0, weight decay {s['weight_decay']:g}, "
            f"eps {s['eps']:g}, clipping 1.0, validation every {s['val_every']} steps on a fixed "
            f"{s['val_batches'] * s['batch'] * s['seq_len']:,}-token set at the evaluation weights; data "
            f"{os.path.basename(data.rstrip('/'))}")


def final_table(outcomes: dict[str, MethodOutcome], launcher: Launcher, report: str, title: str) -> str:
    pairs = [(r, optimizer_fields(r.method, r.knobs, launcher.setup)) for o in outcomes.values()
             for r in o.final_requests]
    points = points_of(pairs, launcher)
    baseline = "AdamW" if any(p.optimizer == "AdamW" for p in points) else None
    table, rows = comparison_table(points, baseline)
    write_figures(report, points, title, which=("figure3",))
    with open(os.path.join(report, "confirm.md"), "w") as f:
        f.write(f"{title}\n\n{MAPPING_NOTE}\n\n{table}\n")
    with open(os.path.join(report, "confirm.json"), "w") as f:
        json.dump({"title": title, "baseline": baseline, "rows": rows}, f, indent=1, default=str)
    return table


# -------------------------------------------------------------------------------------- study
def run_study(a) -> int:
    try:
        spec = StudySpec.load(a.study)
    except (OSError, StudySpecError) as e:
        raise ArgumentError(f"--study: {e}") from None
    if a.optimizers:
        missing = [name for name in a.optimizers if name not in {m.name for m in spec.methods}]
        if missing:
            raise ArgumentError(f"--optimizers {','.join(a.optimizers)}: {a.study} has no {', '.join(missing)} "
                                f"(it tunes {', '.join(m.name for m in spec.methods)}); give only those")
        spec.methods = [m for m in spec.methods if m.name in a.optimizers]
    for m in spec.methods:  # every value the spec can name is checked before anything runs
        try:
            check_fields(optimizer_fields(m.name, m.start, spec.setup))
        except Exception as e:
            raise ArgumentError(f"--study: {m.name}'s start: {e}") from None
    started = time.time()
    report = a.report or os.path.join(a.out, "report")
    tuned_path = a.tuned or os.path.join(report, "tuned.json")
    os.makedirs(report, exist_ok=True)
    split_dir = os.path.join(a.out, "tuning_data")
    manifest = carve_tuning_split(a.data, split_dir, spec.tuning_fraction)
    log(f"tuning split: {manifest['tuning_documents']} of {manifest['documents']} training documents carved into "
        f"{split_dir} (its validation split; training on the other {manifest['train_documents']})")
    launcher = tokenizer_and_launcher(a, spec.setup, {"tuning": split_dir, "final": a.data})
    log(setup_line(spec.setup, a.data))
    log(MAPPING_NOTE)
    state = StudyState(os.path.join(a.out, "study_state.json"), spec)

    def on_phase(record):
        state.record(record)
        c = record.chosen
        log(f"{record.method} phase {record.name!r}: chose {', '.join(f'{k} {v:g}' for k, v in c.items())} "
            f"(tuning loss {record.chosen_final:.4f}, best of {len(record.candidates)})")

    order = sorted(spec.methods, key=lambda m: -_size(m))
    plans = {m.name: method_study(m, spec.tuning_seed, spec.final_seeds, on_phase) for m in order}
    try:
        outcomes = drive(plans, launcher.execute, a.jobs)
    except BenchError as e:
        raise SystemExit(f"error: {e}") from None
    outcomes = {m.name: outcomes[m.name] for m in spec.methods}
    state.chosen = {name: o.chosen for name, o in outcomes.items()}
    state.save()

    # tuned settings
    tuned = {"version": TUNED_VERSION, "study": spec.name, "spec": os.path.relpath(a.study),
             "data": os.path.basename(a.data.rstrip("/")), "setup": spec.setup,
             "selected_on": (f"final validation loss on the tuning split: {manifest['tuning_documents']} of the "
                             f"{manifest['documents']} training documents (smallest sha256 of the text), seed "
                             f"{spec.tuning_seed}"),
             "final_seeds": spec.final_seeds, "h_mapping": MAPPING_NOTE, "methods": {}}
    for name, o in outcomes.items():
        fields = optimizer_fields(name, o.chosen, spec.setup)
        last = o.phases[-1] if o.phases else None
        point = Point(name, {k: v for k, v in fields.items() if k != "name"}, spec.setup["steps"], [{}])
        tuned["methods"][name] = {"optimizer": fields, "knobs": o.chosen,
                                  "tuning_loss": None if last is None else last.chosen_final,
                                  "H": describe_point_h(point)}
    with open(tuned_path, "w") as f:
        json.dump(tuned, f, indent=1)

    # the study's record and figures from the tuning runs
    tuning_pairs = []
    for o in outcomes.values():
        for record in o.phases:
            for c in record.candidates:
                r = RunRequest.of(o.method, c["knobs"], spec.tuning_seed, "tuning")
                tuning_pairs.append((r, optimizer_fields(r.method, r.knobs, spec.setup)))
    unique = {r.key: (r, f) for r, f in tuning_pairs}
    tuning_points = points_of(list(unique.values()), launcher)
    title = f"{spec.name}: tuning runs (tuning split, seed {spec.tuning_seed})"
    figures_md = write_figures(report, tuning_points, title, which=("table2", "figure1b", "figure9"), prefix="tuning_")
    final_title = f"{spec.name}: tuned settings, seeds {spec.final_seeds}, validation split of {tuned['data']}"
    table = final_table(outcomes, launcher, report, final_title)
    timing = timing_line(launcher, started)
    write_study_md(os.path.join(report, "study.md"), spec, a, manifest, outcomes, launcher, figures_md, table, timing,
                   tuned_path)
    log(timing)
    log(f"tuned settings: {tuned_path}; report: {report}")
    log(final_title)
    log(table)
    return 0


def _size(method) -> int:
    """A method's expected number of runs (the longest plan is queued first)."""
    total = 0
    for phase in method.phases:
        n = 1
        for values in phase.grid.values():
            n *= len(values)
        total += n
    return total


def write_study_md(path, spec, a, manifest, outcomes, launcher, figures_md, table, timing, tuned_path) -> None:
    lines = [f"# Tuning study `{spec.name}`", "", spec.description, "",
             f"Command: `python scripts/bench_convergence.py --study {os.path.relpath(a.study)} --data {a.data_arg} "
             f"--out {a.out_arg} --report {a.report_arg} --tuned {os.path.relpath(tuned_path)} --jobs {a.jobs}`", "",
             "## Setup", "", "- " + setup_line(spec.setup, a.data),
             f"- Tuning split: {manifest['tuning_documents']} of the {manifest['documents']} training documents "
             f"(the {spec.tuning_fraction:.0%} with the smallest SHA-256 of their text) are the tuning runs' "
             f"validation set; they train on the other {manifest['train_documents']}. Every choice below is made on "
             f"it, with seed {spec.tuning_seed}. The final runs train on all training documents and report on the "
             "real validation split, which no choice has seen.",
             f"- {MAPPING_NOTE}",
             f"- Time: {timing}.", "",
             "## Phases, grids and every run (tuning split, final validation loss)", "",
             "Each phase sweeps its grid with the other hyperparameters at the best values so far (`start` before the "
             "first phase) and keeps the best of its runs and the previous choice (marked *kept*). `x2` in a grid is "
             "twice the value chosen so far. Grids were written in the spec before any run (see its description for "
             "the one change made during the study).", ""]
    for m in spec.methods:
        o = outcomes[m.name]
        lines += [f"### {m.name}", "", "start: " + ", ".join(f"{k} {v:g}" for k, v in m.start.items()), ""]
        for record in o.phases:
            grid = "; ".join(f"{k} in {v}" for k, v in record.grid.items())
            phase = next(p for p in m.phases if p.name == record.name)
            if phase.extend:
                grid += f"; extended past an edge optimum, at most {phase.extend} runs per side"
            lines += [f"Phase *{record.name}* ({grid}):", "", "| run | tuning loss |", "|---|---:|"]
            for c in sorted(record.candidates, key=lambda c: c["final"]):
                mark = " (kept)" if c["incumbent"] else (" (extension)" if c.get("extension") else "")
                chosen = " **chosen**" if c["knobs"] == record.chosen else ""
                loss = "diverged" if c["diverged"] else f"{c['final']:.4f}"
                lines.append(f"| {', '.join(f'{k} {v:g}' for k, v in c['knobs'].items())}{mark}{chosen} | {loss} |")
            lines.append("")
        lines += ["Chosen: " + ", ".join(f"{k} {v:g}" for k, v in o.chosen.items()), ""]
    lines += ["## Final comparison (real validation split)", "", table, "", "![Figure 3](figure3.png)", "",
              figures_md.replace("# ", "## Tuning runs: ", 1)]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


# ------------------------------------------------------------------------------------ confirm
def run_confirm(a) -> int:
    try:
        tuned = load_tuned_settings(a.confirm)
    except StudySpecError as e:
        raise ArgumentError(f"--confirm {e}") from None
    if not tuned["methods"]:
        raise ArgumentError(f"--confirm {a.confirm}: \"methods\" is empty (write it with --study)")
    missing = [name for name in a.optimizers or [] if name not in tuned["methods"]]
    if missing:
        raise ArgumentError(f"--optimizers {','.join(a.optimizers)}: {a.confirm} has no settings for "
                            f"{', '.join(missing)} (it has {', '.join(tuned['methods'])}); give only those")
    setup = dict(SETUP_DEFAULTS) | tuned.get("setup", {})
    plans = {}  # checked in full before anything is written
    for name, entry in tuned["methods"].items():
        if a.optimizers and name not in a.optimizers:
            continue
        if name not in METHOD_KNOBS:
            raise ArgumentError(f"--confirm {a.confirm}: unknown optimizer {name!r}")
        knobs = entry.get("knobs", {})
        fields = optimizer_fields(name, knobs, setup)
        if entry.get("optimizer") and {k: v for k, v in entry["optimizer"].items()} != fields:
            raise ArgumentError(f"--confirm {a.confirm}: {name}'s optimizer values {entry['optimizer']} do not "
                                f"match its knobs {knobs} (edit both, or rerun the study)")
        plans[name] = confirm_plan(name, knobs, a.seeds)
    started = time.time()
    report = a.report or a.out
    os.makedirs(report, exist_ok=True)
    launcher = tokenizer_and_launcher(a, setup, {"final": a.data})
    log(setup_line(setup, a.data))
    try:
        outcomes = drive(plans, launcher.execute, a.jobs)
    except BenchError as e:
        raise SystemExit(f"error: {e}") from None
    title = (f"{tuned.get('study', 'tuned')} settings from {os.path.relpath(a.confirm)}, seeds {a.seeds}, validation "
             f"split of {os.path.basename(a.data.rstrip('/'))}")
    table = final_table(outcomes, launcher, report, title)
    log(timing_line(launcher, started))
    log(MAPPING_NOTE)
    log(title)
    log(table)
    return 0


# ------------------------------------------------------------------------------- shared grid
def run_name(optimizer: str, h: int | None, lr: float, seed: int) -> str:
    return f"{optimizer}" + (f"_H{h}" if h else "") + f"_lr{lr:g}_seed{seed}"


def grid_fields(a, optimizer: str, h: int | None, lr: float) -> dict:
    fields = {"name": optimizer, "lr": lr, "beta1": 0.9, "beta2": 0.95, "weight_decay": 0.1}
    spec = OPTIMIZERS[optimizer]
    if spec.takes_inner_steps:
        fields |= spec.inner_steps_fields(h, a.mu)
        chosen = dict(mu_y=a.mu_y, outer_lr=a.outer_lr, outer_momentum=a.mu)
        fields |= {key: value for key, value in chosen.items() if key in spec.fields}
    return fields


def run_grid(a) -> int:
    optimizers = a.optimizers or list(OPTIMIZER_NAMES)
    os.makedirs(a.out, exist_ok=True)
    tokenizer = ensure_tokenizer(a.data, a.out, a.vocab_size, a.tokenizer_docs)
    env = run_env(a.device, None if a.threads_per_run == 0 else a.threads_per_run)
    plan = []
    for optimizer in optimizers:
        for h in (a.inner_steps if OPTIMIZERS[optimizer].takes_inner_steps else [None]):
            for lr in a.lrs:
                for seed in a.seeds:
                    plan.append((optimizer, h, lr, seed))

    def one(item):
        optimizer, h, lr, seed = item
        dump = os.path.join(a.out, "runs", run_name(optimizer, h, lr, seed))
        args = short_run_args(
            dump, data=a.data, tokenizer=tokenizer, steps=a.steps, seq_len=a.seq_len, batch=a.batch,
            val_batches=a.val_batches, val_every=a.val_every, log_freq=a.val_every, dataset="c4", flavor=a.flavor,
            vocab_size=a.vocab_size, seed=seed,
        ) + optimizer_cli(grid_fields(a, optimizer, h, lr))
        curve = read_tensorboard(dump, VAL_LOSS) if os.path.isdir(dump) else {}
        if a.steps not in curve:
            if os.path.isdir(dump):
                shutil.rmtree(dump)
            log(f"{run_name(optimizer, h, lr, seed)} ...")
            result = launch(dump, [sys.executable, "-m", "gpa_titan.train", *args], a.steps, env)
            if result.diverged:
                raise BenchError(f"run {dump} diverged")
            curve = result.curve
        return item, curve

    settings: dict[tuple, Setting] = {}
    try:
        with ThreadPoolExecutor(max_workers=a.jobs) as pool:
            finished = list(pool.map(one, plan))
    except BenchError as e:
        raise SystemExit(f"error: {e}") from None
    for (optimizer, h, lr, _seed), curve in finished:
        settings.setdefault((optimizer, h, lr), Setting(optimizer, h, lr)).curves.append(curve)

    best = best_by_final_loss(list(settings.values()))
    info = (f"{a.flavor} Llama, {a.steps} steps x {a.batch} x {a.seq_len} tokens = "
            f"{a.steps * a.batch * a.seq_len / 1e6:.2f}M tokens, seeds {a.seeds}, lr grid {a.lrs}, "
            f"data {os.path.basename(a.data.rstrip('/'))}, {a.device}")
    all_settings = [dict(optimizer=s.optimizer, inner_steps=s.inner_steps, lr=s.lr, finals=s.finals)
                    for s in settings.values()]
    baseline = "AdamW" if "AdamW" in optimizers else None  # without it: no speedup columns
    setup = {k: v for k, v in vars(a).items() if k not in ("study", "confirm")}
    table = write_report(a.out, best, info, baseline=baseline, extra={"setup": setup, "all_settings": all_settings})
    print(info)
    print(table)
    return 0


# ---------------------------------------------------------------------------------------- main
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
                    help="only these optimizers (default: all)")
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


if __name__ == "__main__":
    raise SystemExit(main())
