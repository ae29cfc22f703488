"""The paper's tables and figures from any set of runs, as markdown and data (``plots`` draws them):

- Table 2: final validation loss against the effective number of inner steps H, for the
  optimizers with an H (DiLoCo-AdamW, GPA-AdamW, GPA-Muon: for each (optimizer, H), the best of
  its settings) and, as one value for every H, those without (AdamW, Schedule-Free, Muon);
- Figure 1b: speedup against H (steps to reach AdamW's final validation loss, in percent fewer
  than AdamW's);
- Figure 3: validation curves of each optimizer's best setting (mean over seeds, ±1 std);
- Figure 9: GPA's final validation loss over the averaging window (mu_x) and mu_y, one per GPA
  optimizer (``figure9`` for GPA-AdamW, the paper's; ``figure9_<config key>`` for the others).

Input is a list of ``setting.SettingRuns`` (one setting, all its seeds' curves). H is
``SettingRuns.h`` (DiLoCo's inner steps, or for GPA Table 4's H = ln(0.9)/ln(mu_x)), in columns
by ``h_key``; every H is also shown relative to the run's length (``gpa_titan.optim.table4``:
the paper-equivalent H and the averaging window as a share of the run).
"""

from __future__ import annotations

import os
from typing import Any

from gpa_titan.optim.registry import OPTIMIZER_NAMES, OPTIMIZERS
from gpa_titan.optim.table4 import MAPPING_NOTE, PAPER_STEPS, paper_equivalent_h

from . import plots
from .formatting import MISSING, markdown_table, show_value
from .setting import H_METHODS, SettingRuns, best, finite_best, gpa_window, grouped_by
from .speedup import STUDY_ORDER, Target, loss_text

NO_H_METHODS = tuple(n for n in OPTIMIZER_NAMES if n not in H_METHODS)  # one Table 2 value for every H
GPA_METHODS = tuple(n for n in OPTIMIZER_NAMES if "mu_y" in OPTIMIZERS[n].fields)  # Figure 9's: GPA over a base


def run_length(records: list[SettingRuns]) -> int:
    """The run length T of the settings (the most common one)."""
    lengths = [r.steps for r in records]
    return max(set(lengths), key=lengths.count)


def _seeds_note(records: list[SettingRuns]) -> str:
    counts = sorted({len(r.curves) for r in records})
    return "seeds per setting: " + "/".join(map(str, counts))


def _cell_loss(r: SettingRuns | None) -> str:
    return MISSING if r is None else loss_text(r)


def by_h(records: list[SettingRuns]) -> dict[str, dict[float, list[SettingRuns]]]:
    """The settings of the optimizers with an H, by optimizer and H column."""
    with_h = [r for r in records if r.optimizer in H_METHODS and r.h is not None]
    return {method: grouped_by(own, lambda r: r.h_column)
            for method, own in grouped_by(with_h, lambda r: r.optimizer).items()}


def h_header(hs: list[float], steps: int) -> list[str]:
    """The first rows of a table with one column per H: H, its paper-equivalent H and GPA's window."""
    return ["| | " + " | ".join(f"H = {show_value(h)}" for h in hs) + " |", "|---|" + "---:|" * len(hs),
            f"| paper-equivalent H (H x {PAPER_STEPS:,} / {steps:,}) | "
            + " | ".join(show_value(paper_equivalent_h(h, steps), 3) for h in hs) + " |",
            "| GPA window 1/(1-mu_x): steps (share of run) | "
            + " | ".join(f"{show_value(gpa_window(h), 3)} ({show_value(100 * gpa_window(h) / steps, 2)}%)"
                         for h in hs) + " |"]


# ------------------------------------------------------------------------------------ Table 2
def table2(records: list[SettingRuns]) -> tuple[str, dict]:
    """Markdown of Table 2 and its data: per optimizer and H, the best setting's final loss."""
    grouped = by_h(records)
    hs = sorted({h for per in grouped.values() for h in per})
    steps = run_length(records)
    data: dict[str, dict] = {"H": hs, "steps": steps, "rows": {}}
    lines = h_header(hs, steps) if hs else ["| | (no runs with an H) |", "|---|---:|"]
    present = sorted({r.optimizer for r in records}, key=lambda m: (STUDY_ORDER.get(m, len(STUDY_ORDER)), m))
    for method in present:
        own = [r for r in records if r.optimizer == method]
        if method in H_METHODS:
            cells = {h: best(grouped.get(method, {}).get(h, [])) for h in hs}
        else:
            cells = {h: best(own) for h in hs} if hs else {}
        data["rows"][method] = {show_value(h): None if c is None else {
            "final_mean": c.final_mean, "final_std": c.final_std, "seeds": len(c.curves), "settings": c.settings}
            for h, c in cells.items()}
        finite = [c.final_mean for c in cells.values() if c is not None and not c.diverged]
        low = min(finite) if finite and method in H_METHODS else None
        shown = []
        for h in hs:
            c = cells.get(h)
            text = _cell_loss(c)
            shown.append(f"**{text}**" if c is not None and low is not None and c.final_mean == low else text)
        label = method if method in H_METHODS else f"{method} (no H)"
        lines.append(f"| {label} | " + " | ".join(shown) + " |")
    details = ["", "Setting behind each cell (the best of those run at that H):", ""]
    for method in H_METHODS:
        for h in hs:
            c = best(grouped.get(method, {}).get(h, []))
            if c is not None:
                details.append(f"- {method}, H = {show_value(h)}: {c.describe_settings()} "
                               f"({len(grouped[method][h])} setting(s) at this H)")
    for method in NO_H_METHODS:
        c = best([r for r in records if r.optimizer == method])
        if c is not None:
            details.append(f"- {method}: {c.describe_settings()}")
    intro = (f"Final validation loss against the effective number of inner steps H, T = {steps:,} steps "
             f"({_seeds_note(records)}; bold: each method's best H). " + MAPPING_NOTE)
    return "\n".join([intro, "", *lines, *details]), data


# ----------------------------------------------------------------------------------- Figure 1b
def baseline_setting(records: list[SettingRuns], baseline: str) -> SettingRuns | None:
    """The best setting of the ``baseline`` optimizer that did not diverge (None: none)."""
    return finite_best([r for r in records if r.optimizer == baseline])


def figure1b(records: list[SettingRuns], baseline: str = "AdamW") -> tuple[str, dict]:
    """Markdown and data of Figure 1b: for each (optimizer, H)'s best setting, the steps to reach
    the baseline's final validation loss (mean curves) and the speedup in percent."""
    base = baseline_setting(records, baseline)
    if base is None:
        return f"No {baseline} runs: no speedup (Figure 1b needs a baseline).", {}
    target = Target(base)
    grouped = by_h(records)
    hs = sorted({h for per in grouped.values() for h in per})
    data: dict[str, Any] = {"H": hs, "steps": run_length(records), "target": target.loss,
                            "baseline_steps": target.step, "rows": {}}
    lines = h_header(hs, data["steps"]) if hs else ["| | |", "|---|---:|"]
    for method in H_METHODS:
        if method not in grouped:
            continue
        row = {}
        cells = []
        for h in hs:
            c = best(grouped[method].get(h, []))
            if c is None:
                cells.append(MISSING)
                continue
            needed, gain = target.steps_needed(c), target.speedup(c)
            row[show_value(h)] = {"steps": needed, "speedup": gain}
            cells.append("not reached" if needed is None else f"{gain:+.1f}% ({needed:.0f} steps)")
        data["rows"][method] = row
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    intro = (f"Speedup against H: steps to reach {baseline}'s final validation loss {target.loss:.4f} (its best "
             f"setting: {base.describe_settings()}; reached at step {target.step:.0f}), interpolated between "
             f"evaluations of the mean curve over seeds, as percent fewer steps ({_seeds_note(records)}).")
    return "\n".join([intro, "", *lines]), data


# ------------------------------------------------------------------------------------ Figure 3
def best_per_method(records: list[SettingRuns]) -> dict[str, SettingRuns]:
    """Each optimizer's best setting that did not diverge, by optimizer name."""
    chosen = {method: finite_best(own) for method, own in
              sorted(grouped_by(records, lambda r: r.optimizer).items())}
    return {method: r for method, r in chosen.items() if r is not None}


def figure3(records: list[SettingRuns], checkpoints: int = 10) -> tuple[str, dict[str, SettingRuns]]:
    """Markdown of Figure 3 (the best setting of each optimizer and its mean validation loss at
    about ``checkpoints`` evenly spaced evaluations) and those settings."""
    chosen = best_per_method(records)
    if not chosen:
        return "No finished runs.", {}
    common = sorted(set.intersection(*(set(r.mean) for r in chosen.values())))
    stride = max(1, len(common) // checkpoints)
    shown = sorted(set(common[::stride]) | {common[-1]}) if common else []
    names = list(chosen)
    lines = markdown_table(["step", *names], "|---:|" + "---:|" * len(names),
                           [[str(s), *(f"{chosen[m].mean[s]:.4f}" for m in names)] for s in shown])
    settings = [f"- {m}: {r.describe_settings()}; H {r.describe_h()}; {len(r.curves)} seed(s)"
                for m, r in chosen.items()]
    intro = "Validation loss of each optimizer's best setting (mean over seeds):"
    return "\n".join([intro, "", *lines, "", *settings]), chosen


def figure3_labels(chosen: dict[str, SettingRuns]) -> list[tuple[str, SettingRuns]]:
    """Figure 3's curves and their legend: the optimizer and its H."""
    return [(method + ("" if r.h is None else f" (H {show_value(r.h_column)})"), r) for method, r in chosen.items()]


# ------------------------------------------------------------------------------------ Figure 9
def figure9_name(method: str) -> str:
    """Figure 9's file name for a GPA optimizer: ``figure9`` for GPA-AdamW, ``figure9_gpa_muon``, ..."""
    return "figure9" if method == "GPA-AdamW" else f"figure9_{OPTIMIZERS[method].config_key}"


def figure9(records: list[SettingRuns], method: str = "GPA-AdamW") -> tuple[str, dict]:
    """Markdown and data of Figure 9: a GPA optimizer's best final validation loss per (H, mu_y) cell."""
    gpa = [r for r in records if r.optimizer == method and r.h is not None]
    if not gpa:
        return f"No {method} runs with mu_x > 0.", {}
    steps = run_length(gpa)
    cell_of = grouped_by(gpa, lambda r: (r.h_column, float(r.settings["mu_y"])))
    hs = sorted({h for h, _ in cell_of})
    mu_ys = sorted({m for _, m in cell_of})
    cells = {(h, m): best(cell_of.get((h, m), [])) for h in hs for m in mu_ys}
    overall = best(gpa)
    lines = h_header(hs, steps)
    lines[0] = "| mu_y \\ " + lines[0][2:]
    for m in mu_ys:
        row = []
        for h in hs:
            c = cells[(h, m)]
            text = _cell_loss(c)
            row.append(f"**{text}**" if c is overall else text)
        lines.append(f"| mu_y = {show_value(m)} | " + " | ".join(row) + " |")
    counts = sorted({len(cell_of.get((h, m), [])) for h in hs for m in mu_ys})
    intro = (f"{method}: final validation loss over the averaging window (columns: H, 1 - mu_x = 1 - 0.9^(1/H)) and "
             f"mu_y (rows); each cell is the best of the settings run there ({'/'.join(map(str, counts))} per cell: "
             f"the other hyperparameters are those of the sweep), bold: the best cell. T = {steps:,} steps.")
    data = {"H": hs, "mu_y": mu_ys, "steps": steps,
            "loss": [[None if cells[(h, m)] is None else cells[(h, m)].final_mean for h in hs] for m in mu_ys]}
    return "\n".join([intro, "", *lines]), data


# ---------------------------------------------------------------------------------- all of it
def write_figures(out_dir: str, records: list[SettingRuns], title: str, baseline: str = "AdamW",
                  which: tuple[str, ...] = ("table2", "figure1b", "figure3", "figure9"), prefix: str = "") -> str:
    """Write ``<prefix>table2.md/png``, ``figure1b``, ``figure3``, ``figure9`` (those in ``which``
    that the settings allow) to ``out_dir``; return one markdown document with all of them."""
    os.makedirs(out_dir, exist_ok=True)
    sections = [f"# {title}", ""]

    def emit(name: str, heading: str, text: str, plot=None) -> None:
        png = f"{prefix}{name}.png"
        if plot is not None:
            plot(os.path.join(out_dir, png))
        body = f"## {heading}\n\n{text}\n" + (f"\n![{heading}]({png})\n" if plot is not None else "")
        with open(os.path.join(out_dir, f"{prefix}{name}.md"), "w") as f:
            f.write(f"{title}\n\n{body}")
        sections.append(body)

    has_h = bool(by_h(records))
    if "table2" in which and has_h:
        text, data = table2(records)
        emit("table2", "Table 2: final validation loss against H", text,
             lambda path: plots.plot_table2(data, path, f"{title}: Table 2"))
    if "figure1b" in which and has_h and baseline_setting(records, baseline) is not None:
        text, data = figure1b(records, baseline)
        emit("figure1b", "Figure 1b: speedup against H", text,
             lambda path: plots.plot_figure1b(data, path, f"{title}: Figure 1b"))
    if "figure3" in which:
        text, chosen = figure3(records)
        emit("figure3", "Figure 3: validation loss at the best settings", text,
             (lambda path: plots.plot_curves(figure3_labels(chosen), path, f"{title}: Figure 3")) if chosen else None)
    for method in GPA_METHODS if "figure9" in which else ():
        if any(r.optimizer == method and r.h is not None for r in records):
            text, data = figure9(records, method)
            heading = "Figure 9: GPA over the window (mu_x) and mu_y" + ("" if method == "GPA-AdamW" else f", {method}")
            emit(figure9_name(method), heading, text,
                 lambda path, data=data, method=method: plots.plot_figure9(data, path, f"{title}: Figure 9, {method}"))
    return "\n".join(sections)
