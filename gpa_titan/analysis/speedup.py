"""The paper's comparison: final validation loss, steps to reach the baseline's final
validation loss (interpolated between evaluations), and the speedup in percent."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

LR_KEY = "optimizer.lr"


def steps_to_reach(curve: dict[int, float], target: float) -> float | None:
    """The first step at which the loss curve reaches ``target``, interpolating linearly
    between evaluation points; None if it never does."""
    points = sorted(curve.items())
    if not points:
        return None
    if points[0][1] <= target:
        return float(points[0][0])
    for (s0, l0), (s1, l1) in zip(points, points[1:]):
        if l1 <= target:
            return s0 + (s1 - s0) * (l0 - target) / (l0 - l1)
    return None


def speedup_percent(steps_needed: float | None, baseline_steps: float) -> float | None:
    """How many fewer steps than the baseline, in percent (None: target never reached)."""
    if steps_needed is None:
        return None
    return 100.0 * (1.0 - steps_needed / baseline_steps)


def mean_curve(curves: list[dict[int, float]]) -> dict[int, float]:
    """Pointwise mean over seeds at the evaluation steps they all have."""
    steps = set.intersection(*(set(c) for c in curves)) if curves else set()
    return {s: statistics.fmean(c[s] for c in curves) for s in sorted(steps)}


@dataclass
class Setting:
    """One optimizer configuration (all seeds) and its curves.

    ``config`` (optional) holds the keys that define the setting (see ``grouping``); the
    table shows those that tell two rows of the same (optimizer, H) apart. ``runs`` are the
    seeds' dump folders.
    """

    optimizer: str
    inner_steps: int | None
    lr: float
    curves: list[dict[int, float]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    runs: list[str] = field(default_factory=list)

    @property
    def finals(self) -> list[float]:
        return [c[max(c)] for c in self.curves]

    @property
    def final_mean(self) -> float:
        return statistics.fmean(self.finals)

    @property
    def final_std(self) -> float:
        return statistics.stdev(self.finals) if len(self.finals) > 1 else 0.0

    @property
    def label(self) -> str:
        return self.optimizer + (f" (H={self.inner_steps})" if self.inner_steps else "")


def optimizer_and_h(s: Setting) -> Hashable:
    """The default grouping key for choosing the best lr: (optimizer, H)."""
    return (s.optimizer, s.inner_steps)


def all_but_lr(s: Setting) -> Hashable:
    """The grouping key that keeps every setting apart except by ``optimizer.lr``: the best lr
    is chosen per (optimizer, H) and everything else that defines the setting."""
    return (s.optimizer, s.inner_steps, json.dumps({k: v for k, v in s.config.items() if k != LR_KEY},
                                                     sort_keys=True, default=str))


def best_by_final_loss(settings: list[Setting], key: Callable[[Setting], Hashable] = optimizer_and_h
                       ) -> dict[Hashable, Setting]:
    """For every value of ``key`` (default: (optimizer, H)), the setting (learning rate) with
    the lowest mean final loss."""
    best: dict[Hashable, Setting] = {}
    for s in settings:
        k = key(s)
        if k not in best or s.final_mean < best[k].final_mean:
            best[k] = s
    return best


def distinguishing_keys(settings: list[Setting]) -> list[str]:
    """Config keys (besides the lr) that differ between settings of the same (optimizer, H): the
    extra columns that tell those rows apart."""
    by_label: dict[tuple, list[Setting]] = {}
    for s in settings:
        by_label.setdefault((s.optimizer, s.inner_steps), []).append(s)
    keys: set[str] = set()
    for group in by_label.values():
        for k in sorted({k for s in group for k in s.config}):
            if k != LR_KEY and len({json.dumps(s.config.get(k), default=str) for s in group}) > 1:
                keys.add(k)
    return sorted(keys)


def _show(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def results_table(best: dict[Hashable, Setting], baseline: str | None = "AdamW") -> tuple[str, list[dict]]:
    """The markdown table (and its rows): final validation loss per setting and, with a
    ``baseline`` optimizer, the steps to reach the baseline's final loss and the speedup.

    The text starts with one line that names the baseline actually used (its best setting,
    if it has several rows) or says that there is none, in which case the table has no
    steps-to-target or speedup columns. A ``baseline`` with no runs is an error.
    """
    extra = distinguishing_keys(list(best.values()))
    settings = sorted(best.values(), key=lambda s: (s.optimizer != baseline, s.optimizer, s.inner_steps or 0,
                                                    [_show(s.config.get(k)) for k in extra], s.lr))
    header = ["optimizer", "H", *extra, "lr", "final val loss (mean ± std)", "seeds"]
    base = None
    if baseline is not None:
        candidates = [s for s in settings if s.optimizer == baseline]
        if not candidates:
            present = ", ".join(sorted({s.optimizer for s in settings}))
            raise ValueError(f"no {baseline} runs to compare against (the runs are of {present})")
        base = min(candidates, key=lambda s: s.final_mean)
        base_curve = mean_curve(base.curves)
        target, base_steps = base_curve[max(base_curve)], float(max(base_curve))
        base_name = base.label
        if len(candidates) > 1:  # name the baseline's row among its optimizer's rows
            base_name += "".join(f", {k} {_show(base.config[k])}" for k in distinguishing_keys(candidates)
                                 if k in base.config) + f", lr {base.lr:g}"
        header += [f"steps to {base_name}'s final loss", "speedup"]
        note = (f"Baseline: {base_name} (lr {base.lr:g}): final validation loss {target:.4f} at step "
                f"{base_steps:.0f}; the speedup is how many fewer steps reach it.")
    else:
        note = "No baseline: the table has no steps-to-target or speedup columns."
    rows = []
    for s in settings:
        row = dict(optimizer=s.optimizer, inner_steps=s.inner_steps, lr=s.lr,
                   settings={k: s.config.get(k) for k in extra}, final_mean=s.final_mean, final_std=s.final_std,
                   seeds=len(s.curves), runs=list(s.runs))
        if base is not None:
            # the baseline defines the target at its last step (an earlier dip of a noisy curve
            # below its own final value does not count as a speedup of the baseline)
            needed = base_steps if s is base else steps_to_reach(mean_curve(s.curves), target)
            row.update(steps_to_target=needed, speedup=speedup_percent(needed, base_steps))
        rows.append(row)
    lines = [note, "", "| " + " | ".join(header) + " |",
             "|---|---:|" + "---:|" * len(extra) + "---:|---:|---:|" + ("---:|---:|" if base is not None else "")]
    for r in rows:
        h = "—" if r["inner_steps"] is None else str(r["inner_steps"])
        cells = [r["optimizer"], h, *(_show(r["settings"][k]) for k in extra), f"{r['lr']:g}",
                 f"{r['final_mean']:.4f} ± {r['final_std']:.4f}", str(r["seeds"])]
        if base is not None:
            cells.append("not reached" if r["steps_to_target"] is None else f"{r['steps_to_target']:.0f}")
            cells.append("—" if r["speedup"] is None else f"{r['speedup']:+.1f}%")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines), rows
