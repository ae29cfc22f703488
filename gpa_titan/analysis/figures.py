"""The paper's tables and figures from any set of runs, as markdown and PNG:

- Table 2: final validation loss against the effective number of inner steps H, for AdamW,
  DiLoCo-AdamW and GPA-AdamW (for each (optimizer, H), the best of its settings);
- Figure 1b: speedup against H (steps to reach AdamW's final validation loss, in percent fewer
  than AdamW's);
- Figure 3: validation curves of each optimizer's best setting (mean over seeds, ±1 std);
- Figure 9: GPA's final validation loss over the averaging window (mu_x) and mu_y;
- the comparison table of one chosen setting per optimizer (``comparison_table``).

Input is a list of ``Point`` (one setting, all its seeds' curves), made from
``speedup.Setting`` (``point_from_setting``, what ``scripts/plot_runs.py`` groups) or directly.
H is DiLoCo's inner steps, or for GPA Table 4's H = ln(0.9)/ln(mu_x); every H is also shown
relative to the run's length (``gpa_titan.optim.table4``: the paper-equivalent H and the
averaging window as a share of the run).
"""

from __future__ import annotations

import math
import os
import statistics
from dataclasses import dataclass, field
from typing import Any

from gpa_titan.optim.table4 import (
    MAPPING_NOTE,
    PAPER_MU,
    PAPER_STEPS,
    averaging_window,
    diloco_window,
    effective_inner_steps,
    paper_equivalent_h,
)

from .speedup import Setting, mean_curve, speedup_percent, steps_to_reach

H_METHODS = ("DiLoCo-AdamW", "GPA-AdamW")
TABLE2_METHODS = ("AdamW", "DiLoCo-AdamW", "GPA-AdamW")
SETTING_ORDER = ("lr", "beta1", "beta2", "mu_x", "mu_y", "inner_steps", "outer_lr", "outer_momentum", "warmup_steps",
                 "eps", "weight_decay")
SHORT = {"beta1": "b1", "beta2": "b2", "inner_steps": "H", "outer_lr": "outer lr", "outer_momentum": "outer mom"}


@dataclass
class Point:
    """One setting of one optimizer and its seeds' validation curves.

    Args:
        optimizer (str): ``[optimizer] name``.
        settings (dict): its ``[optimizer]`` values (lr, beta1, beta2, mu_x, mu_y, inner_steps, ...).
        steps (int): the run's length T (``[training] steps``).
        curves (list[dict[int, float]]): step -> validation loss, one per seed.
        runs (list[str]): where the runs are (for the record).
    """

    optimizer: str
    settings: dict[str, Any]
    steps: int
    curves: list[dict[int, float]]
    runs: list[str] = field(default_factory=list)

    @property
    def h(self) -> float | None:
        """DiLoCo's H, or GPA's Table-4 H (mu = 0.9); None for the others (and GPA with mu_x = 0)."""
        if self.optimizer == "DiLoCo-AdamW":
            return float(self.settings["inner_steps"])
        if self.optimizer == "GPA-AdamW" and self.settings.get("mu_x", 0) > 0:
            return effective_inner_steps(self.settings["mu_x"], PAPER_MU)
        return None

    @property
    def finals(self) -> list[float]:
        return [c[max(c)] if c else math.inf for c in self.curves]

    @property
    def final_mean(self) -> float:
        return statistics.fmean(self.finals) if self.curves else math.inf

    @property
    def final_std(self) -> float:
        finals = self.finals
        return statistics.stdev(finals) if len(finals) > 1 and all(map(math.isfinite, finals)) else 0.0

    @property
    def mean(self) -> dict[int, float]:
        return mean_curve([c for c in self.curves if c])


def point_from_setting(s: Setting) -> Point:
    """A ``Point`` from a grouped ``Setting`` (its ``config`` holds the flattened setting keys)."""
    settings = {k.split(".", 1)[1]: v for k, v in s.config.items()
                if k.startswith("optimizer.") and k not in ("optimizer.name", "optimizer.implementation")}
    settings.setdefault("lr", s.lr)
    steps = s.config.get("training.steps")
    if not isinstance(steps, int):
        steps = max(max(c) for c in s.curves)
    return Point(s.optimizer, settings, steps, list(s.curves), list(s.runs))


def h_key(h: float) -> float:
    """H for grouping into columns: the nearest integer when within 2% (Table 4's rounded mu_x
    give e.g. 31.87 for H = 32), else 3 significant digits."""
    if h >= 1 and abs(h - round(h)) <= 0.02 * h:
        return float(round(h))
    return float(f"{h:.3g}")


def fmt_h(h: float) -> str:
    return f"{h:g}"


def num(x: float, digits: int = 3) -> str:
    """A number short and readable: ``digits`` significant digits, no exponent (12.2, 366, 3,052)."""
    return f"{x:,.0f}" if abs(x) >= 10 ** digits else f"{x:.{digits}g}"


def gpa_window(h: float) -> float:
    return averaging_window(PAPER_MU ** (1 / h))


def window_of(p: Point) -> float | None:
    """The averaging window of a point in steps (GPA: 1/(1 - mu_x); DiLoCo: H/(1 - outer momentum))."""
    if p.optimizer == "GPA-AdamW" and p.h is not None:
        return averaging_window(p.settings["mu_x"])
    if p.optimizer == "DiLoCo-AdamW":
        return diloco_window(p.settings["inner_steps"], p.settings.get("outer_momentum", PAPER_MU))
    return None


def describe_point_h(p: Point) -> str:
    """H of a point with its paper-equivalent H and window share of the run (— without H)."""
    if p.h is None:
        return "—"
    window = window_of(p)
    return (f"{fmt_h(h_key(p.h))} (paper-eq. {num(paper_equivalent_h(p.h, p.steps))}; window {num(window)} steps = "
            f"{num(100 * window / p.steps, 2)}% of run)")


def describe_settings(p: Point) -> str:
    keys = [k for k in SETTING_ORDER if k in p.settings and k not in ("eps", "weight_decay", "warmup_steps")]
    return ", ".join(f"{SHORT.get(k, k)} {p.settings[k]:g}" if isinstance(p.settings[k], float) else
                     f"{SHORT.get(k, k)} {p.settings[k]}" for k in keys)


def best(points: list[Point]) -> Point | None:
    """The point with the lowest mean final loss; a diverged one only if all diverged (None: no points)."""
    finite = [p for p in points if math.isfinite(p.final_mean)]
    return min(finite, key=lambda p: p.final_mean) if finite else (points[0] if points else None)


def run_length(points: list[Point]) -> int:
    """The run length T of the points (the most common one)."""
    lengths = [p.steps for p in points]
    return max(set(lengths), key=lengths.count)


def _loss(p: Point | None) -> str:
    if p is None:
        return "—"
    if not math.isfinite(p.final_mean):
        return "diverged"
    return f"{p.final_mean:.4f}" + (f" ± {p.final_std:.4f}" if len(p.curves) > 1 else "")


def _seeds_note(points: list[Point]) -> str:
    counts = sorted({len(p.curves) for p in points})
    return "seeds per setting: " + "/".join(map(str, counts))


# ------------------------------------------------------------------------------------ Table 2
def by_h(points: list[Point]) -> dict[str, dict[float, list[Point]]]:
    out: dict[str, dict[float, list[Point]]] = {}
    for p in points:
        if p.optimizer in H_METHODS and p.h is not None:
            out.setdefault(p.optimizer, {}).setdefault(h_key(p.h), []).append(p)
    return out


def h_header(hs: list[float], steps: int) -> list[str]:
    rows = ["| | " + " | ".join(f"H = {fmt_h(h)}" for h in hs) + " |",
            "|---|" + "---:|" * len(hs),
            f"| paper-equivalent H (H x {PAPER_STEPS:,} / {steps:,}) | "
            + " | ".join(num(paper_equivalent_h(h, steps)) for h in hs) + " |",
            "| GPA window 1/(1-mu_x): steps (share of run) | "
            + " | ".join(f"{num(gpa_window(h))} ({num(100 * gpa_window(h) / steps, 2)}%)" for h in hs) + " |"]
    return rows


def table2(points: list[Point]) -> tuple[str, dict]:
    """Markdown of Table 2 and its data: per optimizer and H, the best setting's final loss."""
    grouped = by_h(points)
    hs = sorted({h for per in grouped.values() for h in per})
    steps = run_length(points)
    data: dict[str, dict] = {"H": hs, "steps": steps, "rows": {}}
    lines = h_header(hs, steps) if hs else ["| | (no runs with an H) |", "|---|---:|"]
    for method in TABLE2_METHODS + ("ScheduleFree-AdamW",):
        own = [p for p in points if p.optimizer == method]
        if not own:
            continue
        if method in H_METHODS:
            cells = {h: best(grouped.get(method, {}).get(h, [])) for h in hs}
        else:
            cells = {h: best(own) for h in hs} if hs else {}
        data["rows"][method] = {fmt_h(h): None if c is None else {"final_mean": c.final_mean, "final_std": c.final_std,
                                                                   "seeds": len(c.curves), "settings": c.settings}
                                for h, c in cells.items()}
        finite = [c.final_mean for c in cells.values() if c is not None and math.isfinite(c.final_mean)]
        low = min(finite) if finite and method in H_METHODS else None
        shown = []
        for h in hs:
            c = cells.get(h)
            text = _loss(c)
            shown.append(f"**{text}**" if c is not None and low is not None and c.final_mean == low else text)
        label = method if method in H_METHODS else f"{method} (no H)"
        lines.append(f"| {label} | " + " | ".join(shown) + " |")
    details = ["", "Setting behind each cell (the best of those run at that H):", ""]
    for method in H_METHODS:
        for h in hs:
            c = best(grouped.get(method, {}).get(h, []))
            if c is not None:
                details.append(f"- {method}, H = {fmt_h(h)}: {describe_settings(c)} ({len(grouped[method][h])} "
                               f"setting(s) at this H)")
    for method in ("AdamW", "ScheduleFree-AdamW"):
        c = best([p for p in points if p.optimizer == method])
        if c is not None:
            details.append(f"- {method}: {describe_settings(c)}")
    intro = (f"Final validation loss against the effective number of inner steps H, T = {steps:,} steps "
             f"({_seeds_note(points)}; bold: each method's best H). " + MAPPING_NOTE)
    return "\n".join([intro, "", *lines, *details]), data



def _h_axis(ax, hs: list, steps: int) -> None:
    """A log x axis of H, each tick also labelled with its paper-equivalent H."""
    if hs:
        ax.set_xscale("log")
        ax.set_xticks(hs)
        ax.set_xticklabels([f"{fmt_h(h)}\n({num(paper_equivalent_h(h, steps))})" for h in hs])
    ax.set_xlabel(f"H (paper-equivalent H at {PAPER_STEPS:,} steps)")

def plot_table2(data: dict, path: str, title: str) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2), dpi=120)
    hs = data["H"]
    for method, cells in data["rows"].items():
        ys = [cells.get(fmt_h(h)) for h in hs]
        if method in H_METHODS:
            xs = [h for h, y in zip(hs, ys) if y is not None and math.isfinite(y["final_mean"])]
            vals = [y["final_mean"] for y in ys if y is not None and math.isfinite(y["final_mean"])]
            ax.plot(xs, vals, marker="o", label=method)
        elif ys and ys[0] is not None:
            ax.axhline(ys[0]["final_mean"], linestyle="--" if method == "AdamW" else ":", color="grey" if
                       method == "AdamW" else "tab:purple", label=f"{method} (no H)")
    _h_axis(ax, hs, data["steps"])
    ax.set_ylabel("final validation loss")
    _finish(fig, ax, path, title)


# ----------------------------------------------------------------------------------- Figure 1b
def finite_best(points: list[Point]) -> Point | None:
    b = best(points)
    return b if b is not None and math.isfinite(b.final_mean) else None


def baseline_point(points: list[Point], baseline: str) -> Point | None:
    return finite_best([p for p in points if p.optimizer == baseline])


def figure1b(points: list[Point], baseline: str = "AdamW") -> tuple[str, dict]:
    """Markdown and data of Figure 1b: for each (optimizer, H)'s best setting, the steps to reach
    the baseline's final validation loss (mean curves) and the speedup in percent."""
    base = baseline_point(points, baseline)
    if base is None:
        return f"No {baseline} runs: no speedup (Figure 1b needs a baseline).", {}
    base_curve = base.mean
    target, base_steps = base_curve[max(base_curve)], float(max(base_curve))
    grouped = by_h(points)
    hs = sorted({h for per in grouped.values() for h in per})
    data: dict[str, Any] = {"H": hs, "steps": run_length(points), "target": target, "baseline_steps": base_steps,
                            "rows": {}}
    lines = h_header(hs, data["steps"]) if hs else ["| | |", "|---|---:|"]
    for method in H_METHODS:
        if method not in grouped:
            continue
        row = {}
        cells = []
        for h in hs:
            c = best(grouped[method].get(h, []))
            if c is None:
                cells.append("—")
                continue
            needed = steps_to_reach(c.mean, target) if math.isfinite(c.final_mean) else None
            gain = speedup_percent(needed, base_steps)
            row[fmt_h(h)] = {"steps": needed, "speedup": gain}
            cells.append("not reached" if needed is None else f"{gain:+.1f}% ({needed:.0f} steps)")
        data["rows"][method] = row
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    intro = (f"Speedup against H: steps to reach {baseline}'s final validation loss {target:.4f} (its best setting: "
             f"{describe_settings(base)}; reached at step {base_steps:.0f}), interpolated between evaluations of "
             f"the mean curve over seeds, as percent fewer steps ({_seeds_note(points)}).")
    return "\n".join([intro, "", *lines]), data


def plot_figure1b(data: dict, path: str, title: str) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2), dpi=120)
    hs = data.get("H", [])
    for method, row in data.get("rows", {}).items():
        xs = [h for h in hs if row.get(fmt_h(h), {}).get("speedup") is not None]
        ax.plot(xs, [row[fmt_h(h)]["speedup"] for h in xs], marker="o", label=method)
        missing = [h for h in hs if fmt_h(h) in row and row[fmt_h(h)]["speedup"] is None]
        if missing:
            ax.plot(missing, [0.0] * len(missing), marker="x", linestyle="none", color="black",
                    label=f"{method}: not reached")
    ax.axhline(0, color="grey", linewidth=0.8)
    _h_axis(ax, hs, data["steps"])
    ax.set_ylabel("speedup vs AdamW (% fewer steps)")
    _finish(fig, ax, path, title)


# ------------------------------------------------------------------------------------ Figure 3
def best_per_method(points: list[Point]) -> dict[str, Point]:
    out = {}
    for method in sorted({p.optimizer for p in points}):
        b = finite_best([p for p in points if p.optimizer == method])
        if b is not None:
            out[method] = b
    return out


def figure3(points: list[Point], checkpoints: int = 10) -> tuple[str, dict[str, Point]]:
    """Markdown of Figure 3 (the best setting of each optimizer and its mean validation loss at
    about ``checkpoints`` evenly spaced evaluations) and those settings."""
    chosen = best_per_method(points)
    if not chosen:
        return "No finished runs.", {}
    common = sorted(set.intersection(*(set(p.mean) for p in chosen.values())))
    stride = max(1, len(common) // checkpoints)
    shown = sorted(set(common[::stride]) | {common[-1]}) if common else []
    names = list(chosen)
    lines = ["| step | " + " | ".join(names) + " |", "|---:|" + "---:|" * len(names)]
    for s in shown:
        lines.append(f"| {s} | " + " | ".join(f"{chosen[m].mean[s]:.4f}" for m in names) + " |")
    settings = [f"- {m}: {describe_settings(p)}; H {describe_point_h(p)}; {len(p.curves)} seed(s)"
                for m, p in chosen.items()]
    intro = "Validation loss of each optimizer's best setting (mean over seeds):"
    return "\n".join([intro, "", *lines, "", *settings]), chosen


def plot_figure3(chosen: dict[str, Point], path: str, title: str) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    low, tops = math.inf, []
    for method, p in chosen.items():
        mean = p.mean
        steps = sorted(mean)
        ys = [mean[s] for s in steps]
        label = method + (f" (H {fmt_h(h_key(p.h))})" if p.h is not None else "")
        line = ax.plot(steps, ys, label=label)[0]
        curves = [c for c in p.curves if c]
        if len(curves) > 1:
            std = [statistics.stdev(c[s] for c in curves) for s in steps]
            ax.fill_between(steps, [y - d for y, d in zip(ys, std)], [y + d for y, d in zip(ys, std)],
                            color=line.get_color(), alpha=0.2)
        low = min(low, min(ys))
        tops.append(ys[len(ys) // 4])
    if tops:
        ax.set_ylim(low - 0.05 * (max(tops) - low + 1e-9), max(tops))
    ax.set_xlabel("step")
    ax.set_ylabel("validation loss")
    _finish(fig, ax, path, title)


# ------------------------------------------------------------------------------------ Figure 9
def figure9(points: list[Point]) -> tuple[str, dict]:
    """Markdown and data of Figure 9: GPA's best final validation loss per (H, mu_y) cell."""
    gpa = [p for p in points if p.optimizer == "GPA-AdamW" and p.h is not None]
    if not gpa:
        return "No GPA-AdamW runs with mu_x > 0.", {}
    steps = run_length(gpa)
    hs = sorted({h_key(p.h) for p in gpa})
    mu_ys = sorted({float(p.settings["mu_y"]) for p in gpa})
    cells: dict[tuple[float, float], Point | None] = {
        (h, m): best([p for p in gpa if h_key(p.h) == h and float(p.settings["mu_y"]) == m]) for h in hs for m in mu_ys}
    overall = best(gpa)
    lines = h_header(hs, steps)
    lines[0] = "| mu_y \\ " + lines[0][2:]
    for m in mu_ys:
        row = []
        for h in hs:
            c = cells[(h, m)]
            text = _loss(c)
            row.append(f"**{text}**" if c is overall else text)
        lines.append(f"| mu_y = {m:g} | " + " | ".join(row) + " |")
    counts = sorted({sum(1 for p in gpa if h_key(p.h) == h and float(p.settings["mu_y"]) == m) for h in hs
                     for m in mu_ys})
    intro = (f"GPA-AdamW: final validation loss over the averaging window (columns: H, 1 - mu_x = 1 - 0.9^(1/H)) and "
             f"mu_y (rows); each cell is the best of the settings run there ({'/'.join(map(str, counts))} per cell: "
             f"the other hyperparameters are those of the sweep), bold: the best cell. T = {steps:,} steps.")
    data = {"H": hs, "mu_y": mu_ys, "steps": steps,
            "loss": [[None if cells[(h, m)] is None else cells[(h, m)].final_mean for h in hs] for m in mu_ys]}
    return "\n".join([intro, "", *lines]), data


def plot_figure9(data: dict, path: str, title: str) -> None:
    plt = _pyplot()
    import numpy as np

    grid = np.array([[math.nan if v is None or not math.isfinite(v) else v for v in row] for row in data["loss"]])
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(data["H"]), 1.4 + 0.55 * len(data["mu_y"])), dpi=120)
    finite = grid[np.isfinite(grid)]
    vmax = float(np.percentile(finite, 80)) if finite.size else 1.0
    image = ax.imshow(grid, cmap="viridis_r", aspect="auto", origin="lower", vmax=vmax)
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            v = grid[i, j]
            ax.text(j, i, "—" if math.isnan(v) else f"{v:.3f}", ha="center", va="center", fontsize=8,
                    color="white" if not math.isnan(v) and v < (np.nanmin(grid) + vmax) / 2 else "black")
    steps = data["steps"]
    ax.set_xticks(range(len(data["H"])))
    ax.set_xticklabels([f"H {fmt_h(h)}\n1-mu_x {1 - PAPER_MU ** (1 / h):.3g}\n"
                        f"{num(100 * gpa_window(h) / steps, 2)}% of run" for h in data["H"]],
                       fontsize=7)
    ax.set_yticks(range(len(data["mu_y"])))
    ax.set_yticklabels([f"{m:g}" for m in data["mu_y"]])
    ax.set_ylabel("mu_y")
    fig.colorbar(image, ax=ax, label="final validation loss")
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# ---------------------------------------------------------------------------- comparison table
def comparison_table(points: list[Point], baseline: str | None = "AdamW") -> tuple[str, list[dict]]:
    """One row per point: optimizer, H (paper-equivalent, window), settings, final validation loss
    mean ± std, seeds, steps to the baseline's final loss and the speedup (no such columns without
    a baseline among the points)."""
    base = baseline_point(points, baseline) if baseline else None
    header = ["optimizer", "H (paper-equivalent; averaging window)", "settings", "final val loss (mean ± std)", "seeds"]
    if base is not None:
        base_curve = base.mean
        target, base_steps = base_curve[max(base_curve)], float(max(base_curve))
        header += [f"steps to {baseline}'s final val loss", "speedup"]
    order = {"AdamW": 0, "DiLoCo-AdamW": 1, "GPA-AdamW": 2, "ScheduleFree-AdamW": 3}
    rows, lines = [], ["| " + " | ".join(header) + " |", "|---|---|---|---:|---:|" + ("---:|---:|" if base else "")]
    for p in sorted(points, key=lambda p: (order.get(p.optimizer, 9), p.final_mean)):
        row = {"optimizer": p.optimizer, "H": p.h, "settings": p.settings, "final_mean": p.final_mean,
               "final_std": p.final_std, "seeds": len(p.curves), "runs": p.runs}
        cells = [p.optimizer, describe_point_h(p), describe_settings(p), _loss(p), str(len(p.curves))]
        if base is not None:
            needed = base_steps if p is base else (steps_to_reach(p.mean, target) if math.isfinite(p.final_mean)
                                                   else None)
            gain = speedup_percent(needed, base_steps)
            row |= {"steps_to_target": needed, "speedup": gain}
            cells += ["not reached" if needed is None else f"{needed:.0f}", "—" if gain is None else f"{gain:+.1f}%"]
        rows.append(row)
        lines.append("| " + " | ".join(cells) + " |")
    note = (f"Target: {baseline}'s final validation loss {target:.4f} (mean over seeds, step {base_steps:.0f})."
            if base is not None else "No baseline: no steps-to-target or speedup columns.")
    return "\n".join([note, "", *lines]), rows


# ---------------------------------------------------------------------------------- all of it
def write_figures(out_dir: str, points: list[Point], title: str, baseline: str = "AdamW",
                  which: tuple[str, ...] = ("table2", "figure1b", "figure3", "figure9"), prefix: str = "") -> str:
    """Write ``<prefix>table2.md/png``, ``figure1b``, ``figure3``, ``figure9`` (those in ``which``
    that the points allow) to ``out_dir``; return one markdown document with all of them."""
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

    has_h = bool(by_h(points))
    if "table2" in which and has_h:
        text, data = table2(points)
        emit("table2", "Table 2: final validation loss against H", text,
             lambda path: plot_table2(data, path, f"{title}: Table 2"))
    if "figure1b" in which and has_h and baseline_point(points, baseline) is not None:
        text, data = figure1b(points, baseline)
        emit("figure1b", "Figure 1b: speedup against H", text,
             lambda path: plot_figure1b(data, path, f"{title}: Figure 1b"))
    if "figure3" in which:
        text, chosen = figure3(points)
        emit("figure3", "Figure 3: validation loss at the best settings", text,
             (lambda path: plot_figure3(chosen, path, f"{title}: Figure 3")) if chosen else None)
    if "figure9" in which and any(p.optimizer == "GPA-AdamW" and p.h is not None for p in points):
        text, data = figure9(points)
        emit("figure9", "Figure 9: GPA over the window (mu_x) and mu_y", text,
             lambda path: plot_figure9(data, path, f"{title}: Figure 9"))
    return "\n".join(sections)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _finish(fig, ax, path: str, title: str) -> None:
    import textwrap

    ax.set_title("\n".join(textwrap.wrap(title, 80)), fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    import matplotlib.pyplot as plt

    plt.close(fig)
