"""Validation-loss curves as PNG (matplotlib, no display needed)."""

from __future__ import annotations

import math
import statistics
import textwrap
from typing import Any

from .speedup import Setting, distinguishing_keys, mean_curve


def plot_curves(best: dict[Any, Setting], path: str, title: str) -> None:
    """Validation loss against steps, one curve per setting (mean over seeds, ±1 std band),
    labelled by optimizer, H, lr and any other key that tells settings of one optimizer apart."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    lowest = math.inf
    extra = distinguishing_keys(list(best.values()))
    for s in sorted(best.values(), key=lambda s: (s.label, [str(s.config.get(k)) for k in extra], s.lr)):
        mean = mean_curve(s.curves)
        steps = sorted(mean)
        ys = [mean[k] for k in steps]
        label = s.label + "".join(f", {k.split('.')[-1]} {s.config.get(k)}" for k in extra) + f", lr {s.lr:g}"
        line = ax.plot(steps, ys, label=label)[0]
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
