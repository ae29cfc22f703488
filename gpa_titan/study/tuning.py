"""The tuning study (``--study``) and the confirmation of its tuned settings (``--confirm``):
carve the tuning split, run the plans on the launcher, write the tuned settings and the report."""

from __future__ import annotations

import os
import time

from gpa_titan.data.tuning_split import carve_tuning_split
from gpa_titan.optim.registry import check_fields
from gpa_titan.optim.table4 import MAPPING_NOTE

from .arguments import ArgumentError
from .launcher import BenchError, Launcher, ensure_tokenizer, log
from .planner import StudyState, confirm_plan, drive, method_study
from .report import final_table, setup_line, study_md, timing_line, tuning_figures
from .spec import StudySpec, StudySpecError, optimizer_fields
from .tuned import (
    extendable_settings,
    load_tuned_settings,
    setup_of,
    tuned_settings,
    with_kept_methods,
    write_tuned_settings,
)


def tokenizer_and_launcher(a, setup: dict, data_for_stage: dict[str, str]) -> Launcher:
    os.makedirs(a.out, exist_ok=True)
    tokenizer = ensure_tokenizer(a.data, a.out, setup["vocab_size"], setup["tokenizer_docs"])
    return Launcher(a.out, data_for_stage, tokenizer, setup, device=a.device,
                    threads_per_run=None if a.threads_per_run == 0 else a.threads_per_run, log=log)


def run_study(a) -> int:
    try:
        spec = StudySpec.load(a.study)
    except (OSError, StudySpecError) as e:
        raise ArgumentError(f"--study: {e}") from None
    spec_order = [m.name for m in spec.methods]
    report = a.report or os.path.join(a.out, "report")
    tuned_path = a.tuned or os.path.join(report, "tuned.json")
    existing = None
    if a.optimizers:
        missing = [name for name in a.optimizers if name not in spec_order]
        if missing:
            raise ArgumentError(f"--optimizers {','.join(a.optimizers)}: {a.study} has no {', '.join(missing)} "
                                f"(it tunes {', '.join(spec_order)}); give only those")
        spec.methods = [m for m in spec.methods if m.name in a.optimizers]
        try:  # their tuned settings join the file's others: checked now, not after the runs
            existing = extendable_settings(tuned_path, spec, a.data, a.optimizers)
        except StudySpecError as e:
            raise ArgumentError(f"--tuned {e}") from None
    for m in spec.methods:  # every value the spec can name is checked before anything runs
        try:
            check_fields(optimizer_fields(m.name, m.start, spec.setup))
        except Exception as e:
            raise ArgumentError(f"--study: {m.name}'s start: {e}") from None
    started = time.time()
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

    selected_on = (f"final validation loss on the tuning split: {manifest['tuning_documents']} of the "
                   f"{manifest['documents']} training documents (smallest sha256 of the text), seed {spec.tuning_seed}")
    tuned = tuned_settings(spec, a.study, a.data, selected_on, outcomes)
    tuned = with_kept_methods(tuned, existing, spec_order)
    write_tuned_settings(tuned_path, tuned)
    kept = [name for name in tuned["methods"] if name not in outcomes]
    if kept:
        log(f"{tuned_path}: kept the tuned settings of {', '.join(kept)} (not rerun), added {', '.join(outcomes)}")

    # the study's record and figures from the tuning runs
    figures_md = tuning_figures(outcomes, launcher, spec, report)
    final_title = f"{spec.name}: tuned settings, seeds {spec.final_seeds}, validation split of {tuned['data']}"
    table = final_table(outcomes, launcher, report, final_title)
    timing = timing_line(launcher, started)
    only = f" --optimizers {','.join(a.optimizers)}" if a.optimizers else ""
    command = (f"python scripts/bench_convergence.py --study {os.path.relpath(a.study)}{only} --data {a.data_arg} "
               f"--out {a.out_arg} --report {a.report_arg} --tuned {os.path.relpath(tuned_path)} --jobs {a.jobs}")
    with open(os.path.join(report, "study.md"), "w") as f:
        f.write(study_md(spec, command, setup_line(spec.setup, a.data), manifest, outcomes, figures_md, table, timing))
    log(timing)
    log(f"tuned settings: {tuned_path}; report: {report}")
    log(final_title)
    log(table)
    return 0


def run_confirm(a) -> int:
    try:
        tuned = load_tuned_settings(a.confirm)  # every method known, its values its knobs'
    except StudySpecError as e:
        raise ArgumentError(f"--confirm {e}") from None
    missing = [name for name in a.optimizers or [] if name not in tuned["methods"]]
    if missing:
        raise ArgumentError(f"--optimizers {','.join(a.optimizers)}: {a.confirm} has no settings for "
                            f"{', '.join(missing)} (it has {', '.join(tuned['methods'])}); give only those")
    setup = setup_of(tuned)
    plans = {name: confirm_plan(name, entry["knobs"], a.seeds) for name, entry in tuned["methods"].items()
             if not a.optimizers or name in a.optimizers}
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


def _size(method) -> int:
    """A method's expected number of runs (the longest plan is queued first)."""
    total = 0
    for phase in method.phases:
        n = 1
        for values in phase.grid.values():
            n *= len(values)
        total += n
    return total
