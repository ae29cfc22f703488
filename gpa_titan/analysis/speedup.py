"""The paper's comparison: final validation loss, steps to reach the baseline's final validation
loss (interpolated between evaluations of the mean curve over seeds), and the speedup in percent.

Two views of one computation (``Target``): ``results_table``, the lr-tuned grid of
``scripts/plot_runs.py`` (one column per config key that tells settings apart), and
``comparison_table``, one chosen setting per optimizer with H relative to the run and the
settings in words (the study's final comparison).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from .formatting import MISSING, markdown_table, show_value
from .setting import SettingRuns, distinguishing_keys, finite_best

# the rows' order of comparison_table and Table 2: AdamW first, each averaging method, its base before GPA over it
STUDY_ORDER = {"AdamW": 0, "DiLoCo-AdamW": 1, "GPA-AdamW": 2, "ScheduleFree-AdamW": 3, "Muon": 4, "GPA-Muon": 5}


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


@dataclass
class Target:
    """The baseline's final validation loss (its mean curve's last value) and the step of it.

    Args:
        baseline (SettingRuns): the baseline setting (not diverged).
    """

    baseline: SettingRuns

    @property
    def loss(self) -> float:
        curve = self.baseline.mean
        return curve[max(curve)]

    @property
    def step(self) -> float:
        return float(max(self.baseline.mean))

    def steps_needed(self, r: SettingRuns) -> float | None:
        """The step at which ``r``'s mean curve reaches the target (None: never, or diverged). The
        baseline defines the target at its last step (an earlier dip of a noisy curve below its
        own final value does not count as a speedup of the baseline)."""
        if r is self.baseline:
            return self.step
        return None if r.diverged else steps_to_reach(r.mean, self.loss)

    def speedup(self, r: SettingRuns) -> float | None:
        return speedup_percent(self.steps_needed(r), self.step)

    def columns(self, r: SettingRuns) -> tuple[dict, list[str]]:
        """The steps-to-target and speedup of ``r``: as row data and as table cells."""
        needed, gain = self.steps_needed(r), self.speedup(r)
        return ({"steps_to_target": needed, "speedup": gain},
                ["not reached" if needed is None else f"{needed:.0f}", MISSING if gain is None else f"{gain:+.1f}%"])


def loss_text(r: SettingRuns) -> str:
    """Final validation loss, mean ± std over seeds (no ± for one seed); ``diverged``."""
    if r.diverged:
        return "diverged"
    return f"{r.final_mean:.4f}" + (f" ± {r.final_std:.4f}" if len(r.curves) > 1 else "")


def results_table(best: dict[Hashable, SettingRuns], baseline: str | None = "AdamW") -> tuple[str, list[dict]]:
    """The markdown table (and its rows) of the best settings (``setting.best_by_final_loss``):
    final validation loss per setting and, with a ``baseline`` optimizer, the steps to reach the
    baseline's final loss and the speedup.

    The text starts with one line that names the baseline actually used (its best setting,
    if it has several rows) or says that there is none, in which case the table has no
    steps-to-target or speedup columns. A ``baseline`` with no runs is an error.
    """
    extra = distinguishing_keys(list(best.values()))
    records = sorted(best.values(), key=lambda r: (r.optimizer != baseline, r.optimizer, r.h_column or 0,
                                                   [show_value(r.config.get(k)) for k in extra], r.lr))
    header = ["optimizer", "H", *extra, "lr", "final val loss (mean ± std)", "seeds"]
    target = None
    if baseline is not None:
        candidates = [r for r in records if r.optimizer == baseline]
        if not candidates:
            present = ", ".join(sorted({r.optimizer for r in records}))
            raise ValueError(f"no {baseline} runs to compare against (the runs are of {present})")
        target = Target(finite_best(candidates) or candidates[0])
        base = target.baseline
        base_name = base.label
        if len(candidates) > 1:  # name the baseline's row among its optimizer's rows
            base_name += "".join(f", {k} {show_value(base.config[k])}" for k in distinguishing_keys(candidates)
                                 if k in base.config) + f", lr {show_value(base.lr)}"
        header += [f"steps to {base_name}'s final loss", "speedup"]
        note = (f"Baseline: {base_name} (lr {show_value(base.lr)}): final validation loss {target.loss:.4f} at step "
                f"{target.step:.0f}; the speedup is how many fewer steps reach it.")
    else:
        note = "No baseline: the table has no steps-to-target or speedup columns."
    rows, cells = [], []
    for r in records:
        row = dict(optimizer=r.optimizer, inner_steps=r.h_column, lr=r.lr,
                   settings={k: r.config.get(k) for k in extra}, final_mean=r.final_mean, final_std=r.final_std,
                   seeds=len(r.curves), runs=list(r.runs))
        line = [r.optimizer, show_value(r.h_column), *(show_value(r.config.get(k)) for k in extra),
                show_value(r.lr), f"{r.final_mean:.4f} ± {r.final_std:.4f}", str(len(r.curves))]
        if target is not None:
            data, shown = target.columns(r)
            row.update(data)
            line += shown
        rows.append(row)
        cells.append(line)
    align = "|---|---:|" + "---:|" * len(extra) + "---:|---:|---:|" + ("---:|---:|" if target is not None else "")
    return "\n".join([note, "", *markdown_table(header, align, cells)]), rows


def comparison_table(records: list[SettingRuns], baseline: str | None = "AdamW") -> tuple[str, list[dict]]:
    """One row per setting: optimizer, H (paper-equivalent, window), settings, final validation
    loss mean ± std, seeds, steps to the baseline's final loss and the speedup (no such columns
    without a baseline among the settings that did not diverge)."""
    base = finite_best([r for r in records if r.optimizer == baseline]) if baseline else None
    target = None if base is None else Target(base)
    header = ["optimizer", "H (paper-equivalent; averaging window)", "settings", "final val loss (mean ± std)", "seeds"]
    if target is not None:
        header += [f"steps to {baseline}'s final val loss", "speedup"]
    rows, cells = [], []
    for r in sorted(records, key=lambda r: (STUDY_ORDER.get(r.optimizer, len(STUDY_ORDER)), r.final_mean)):
        row = {"optimizer": r.optimizer, "H": r.h, "settings": r.settings, "final_mean": r.final_mean,
               "final_std": r.final_std, "seeds": len(r.curves), "runs": r.runs}
        line = [r.optimizer, r.describe_h(), r.describe_settings(), loss_text(r), str(len(r.curves))]
        if target is not None:
            data, shown = target.columns(r)
            row |= data
            line += shown
        rows.append(row)
        cells.append(line)
    note = (f"Target: {baseline}'s final validation loss {target.loss:.4f} (mean over seeds, step {target.step:.0f})."
            if target is not None else "No baseline: no steps-to-target or speedup columns.")
    align = "|---|---|---|---:|---:|" + ("---:|---:|" if target is not None else "")
    return "\n".join([note, "", *markdown_table(header, align, cells)]), rows
