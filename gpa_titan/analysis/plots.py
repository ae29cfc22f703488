"""The analysis's PNGs (matplotlib, no display needed): validation curves of any labelled
settings (Figure 3, ``results.md``'s plot), and Table 2, Figure 1b and Figure 9 from the data
``figures`` computes."""

from __future__ import annotations

import math
import statistics
import textwrap

from gpa_titan.optim.table4 import PAPER_MU, PAPER_STEPS, paper_equivalent_h

from .formatting import MISSING, show_value
from .setting import H_METHODS, SettingRuns, gpa_window


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _finish(fig, ax, path: str, title: str) -> None:
    ax.set_title("\n".join(textwrap.wrap(title, 80)), fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    _pyplot().close(fig)


def plot_curves(labelled: list[tuple[str, SettingRuns]], path: str, title: str) -> None:
    """Validation loss against steps, one curve per (legend label, setting): the mean over its
    seeds that did not diverge, with a ±1 std band; the y axis from the lowest loss up to the
    highest a quarter into the curves."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    low, tops = math.inf, []
    for label, r in labelled:
        mean = r.mean
        steps = sorted(mean)
        ys = [mean[s] for s in steps]
        line = ax.plot(steps, ys, label=label)[0]
        curves = [c for c in r.curves if c]
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


def _h_axis(ax, hs: list, steps: int) -> None:
    """A log x axis of H, each tick also labelled with its paper-equivalent H."""
    if hs:
        ax.set_xscale("log")
        ax.set_xticks(hs)
        ax.set_xticklabels([f"{show_value(h)}\n({show_value(paper_equivalent_h(h, steps), 3)})" for h in hs])
    ax.set_xlabel(f"H (paper-equivalent H at {PAPER_STEPS:,} steps)")


def plot_table2(data: dict, path: str, title: str) -> None:
    """Table 2 as a plot: final loss against H per optimizer, the optimizers without H as lines."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2), dpi=120)
    hs = data["H"]
    for method, cells in data["rows"].items():
        ys = [cells.get(show_value(h)) for h in hs]
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


def plot_figure1b(data: dict, path: str, title: str) -> None:
    """Figure 1b: speedup against H per optimizer; an x at 0 where the target is not reached."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2), dpi=120)
    hs = data.get("H", [])
    for method, row in data.get("rows", {}).items():
        xs = [h for h in hs if row.get(show_value(h), {}).get("speedup") is not None]
        ax.plot(xs, [row[show_value(h)]["speedup"] for h in xs], marker="o", label=method)
        missing = [h for h in hs if show_value(h) in row and row[show_value(h)]["speedup"] is None]
        if missing:
            ax.plot(missing, [0.0] * len(missing), marker="x", linestyle="none", color="black",
                    label=f"{method}: not reached")
    ax.axhline(0, color="grey", linewidth=0.8)
    _h_axis(ax, hs, data["steps"])
    ax.set_ylabel("speedup vs AdamW (% fewer steps)")
    _finish(fig, ax, path, title)


def plot_figure9(data: dict, path: str, title: str) -> None:
    """Figure 9: GPA's final loss as a heat map over H (columns) and mu_y (rows)."""
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
            ax.text(j, i, MISSING if math.isnan(v) else f"{v:.3f}", ha="center", va="center", fontsize=8,
                    color="white" if not math.isnan(v) and v < (np.nanmin(grid) + vmax) / 2 else "black")
    steps = data["steps"]
    ax.set_xticks(range(len(data["H"])))
    ax.set_xticklabels([f"H {show_value(h)}\n1-mu_x {1 - PAPER_MU ** (1 / h):.3g}\n"
                        f"{show_value(100 * gpa_window(h) / steps, 2)}% of run" for h in data["H"]],
                       fontsize=7)
    ax.set_yticks(range(len(data["mu_y"])))
    ax.set_yticklabels([show_value(m) for m in data["mu_y"]])
    ax.set_ylabel("mu_y")
    fig.colorbar(image, ax=ax, label="final validation loss")
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    _pyplot().close(fig)
