"""Validation-loss curves as PNG (matplotlib, no display needed)."""

from __future__ import annotations

import math
import statistics
import textwrap

from .speedup import Setting, mean_curve


def plot_curves(best: dict[tuple[str, int | None], Setting], path: str, title: str) -> None:
    """Validation loss against steps, one curve per optimizer (mean over seeds, ±1 std band)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    lowest = math.inf
    for (_, _), s in sorted(best.items(), key=lambda kv: kv[1].label):
        mean = mean_curve(s.curves)
        steps = sorted(mean)
        ys = [mean[k] for k in steps]
        line = ax.plot(steps, ys, label=f"{s.label}, lr {s.lr:g}")[0]
        if len(s.curves) > 1:
            std = [statistics.stdev(c[k] for c in s.curves) for k in steps]
            ax.fill_between(steps, [y - d for y, d in zip(ys, std)], [y + d for y, d in zip(ys, std)],
                            color=line.get_color(), alpha=0.2)
        lowest = min(lowest, min(ys))
    if lowest < math.inf:
        top = max(max(mean_curve(s.curves)[k] for k in sorted(mean_curve(s.curves))[len(mean_curve(s.curves)) // 4:])
                  for s in best.values())
        ax.set_ylim(lowest - 0.05 * (top - lowest + 1e-9), top)
    ax.set_xlabel("step")
    ax.set_ylabel("validation loss")
    ax.set_title("\n".join(textwrap.wrap(title, 80)), fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
