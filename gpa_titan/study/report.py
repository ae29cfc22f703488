"""The study's and confirm's report: the analysis records of finished runs, the final comparison
(``confirm.md``, ``confirm.json``, Figure 3), the study's record (``study.md``: every phase,
grid and run) and the setup and timing lines. Tables and figures are views of
``gpa_titan.analysis`` (``SettingRuns``)."""

from __future__ import annotations

import json
import os
import time

from gpa_titan.analysis.figures import write_figures
from gpa_titan.analysis.setting import SettingRuns
from gpa_titan.analysis.speedup import comparison_table
from gpa_titan.optim.table4 import MAPPING_NOTE

from .launcher import Launcher
from .planner import MethodOutcome, RunRequest
from .spec import StudySpec, optimizer_fields


def records_of(requests: list[RunRequest], launcher: Launcher) -> list[SettingRuns]:
    """One ``SettingRuns`` per setting (seeds together) of finished requests (a diverged seed: no curve)."""
    by_setting: dict[str, SettingRuns] = {}
    for request in requests:
        result = launcher.results[request.key]
        key = f"{request.stage}/{request.method}/{json.dumps(request.knobs, sort_keys=True)}"
        fields = optimizer_fields(request.method, request.knobs, launcher.setup)
        settings = {k: v for k, v in fields.items() if k != "name"}
        record = by_setting.setdefault(key, SettingRuns(request.method, settings, launcher.setup["steps"]))
        record.curves.append({} if result.diverged else result.curve)
        record.runs.append(launcher.dump(request))
    return list(by_setting.values())


def tuning_requests(outcomes: dict[str, MethodOutcome], seed: int) -> list[RunRequest]:
    """Every tuning run of the study's phases, once each."""
    unique: dict[str, RunRequest] = {}
    for o in outcomes.values():
        for record in o.phases:
            for c in record.candidates:
                r = RunRequest.of(o.method, c["knobs"], seed, "tuning")
                unique.setdefault(r.key, r)
    return list(unique.values())


def timing_line(launcher: Launcher, started: float) -> str:
    results = list(launcher.results.values())
    launched = [r for r in results if r.launched]
    cpu = sum(r.cpu_s for r in results)
    ratio = max((r.cpu_s / r.wall_s for r in results if r.wall_s > 0), default=0.0)
    return (f"{len(results)} runs ({len(launched)} launched by this invocation, {time.time() - started:.0f} s wall); "
            f"all runs together: {cpu / 60:.1f} CPU-minutes, {sum(r.wall_s for r in results) / 60:.1f} run-minutes; "
            f"the busiest run used {ratio:.2f} CPU-seconds per second (1 thread per run)")


def setup_line(setup: dict, data: str) -> str:
    s = setup
    tokens = s["steps"] * s["batch"] * s["seq_len"]
    return (f"{s['flavor']} Llama, {s['vocab_size']}-token BPE, {s['steps']:,} steps x {s['batch']} x {s['seq_len']} "
            f"tokens = {tokens / 1e6:.2f}M tokens, warmup 10% then cosine to 0, weight decay {s['weight_decay']:g}, "
            f"eps {s['eps']:g}, clipping 1.0, validation every {s['val_every']} steps on a fixed "
            f"{s['val_batches'] * s['batch'] * s['seq_len']:,}-token set at the evaluation weights; data "
            f"{os.path.basename(data.rstrip('/'))}")


def final_table(outcomes: dict[str, MethodOutcome], launcher: Launcher, report: str, title: str) -> str:
    """The final runs' comparison: ``confirm.md``, ``confirm.json`` and Figure 3 in ``report``; returns the table."""
    records = records_of([r for o in outcomes.values() for r in o.final_requests], launcher)
    baseline = "AdamW" if any(r.optimizer == "AdamW" for r in records) else None
    table, rows = comparison_table(records, baseline)
    write_figures(report, records, title, which=("figure3",))
    with open(os.path.join(report, "confirm.md"), "w") as f:
        f.write(f"{title}\n\n{MAPPING_NOTE}\n\n{table}\n")
    with open(os.path.join(report, "confirm.json"), "w") as f:
        json.dump({"title": title, "baseline": baseline, "rows": rows}, f, indent=1, default=str)
    return table


def tuning_figures(outcomes: dict[str, MethodOutcome], launcher: Launcher, spec: StudySpec, report: str) -> str:
    """Table 2, Figures 1b and 9 of the tuning runs (``tuning_*`` in ``report``); returns their markdown."""
    records = records_of(tuning_requests(outcomes, spec.tuning_seed), launcher)
    title = f"{spec.name}: tuning runs (tuning split, seed {spec.tuning_seed})"
    return write_figures(report, records, title, which=("table2", "figure1b", "figure9"), prefix="tuning_")


def study_md(spec: StudySpec, command: str, setup: str, manifest: dict, outcomes: dict[str, MethodOutcome],
             figures_md: str, table: str, timing: str) -> str:
    """``study.md``: the setup, every phase's grid and runs with the choice, and the final comparison."""
    lines = [f"# Tuning study `{spec.name}`", "", spec.description, "",
             f"Command: `{command}`", "",
             "## Setup", "", "- " + setup,
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
    return "\n".join(lines) + "\n"
