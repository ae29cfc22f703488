"""The paper's comparison: final validation loss, steps to reach the baseline's final
validation loss (interpolated between evaluations), and the speedup in percent."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field


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
    """One optimizer configuration (all seeds) and its curves."""

    optimizer: str
    inner_steps: int | None
    lr: float
    curves: list[dict[int, float]] = field(default_factory=list)

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


def best_by_final_loss(settings: list[Setting]) -> dict[tuple[str, int | None], Setting]:
    """For every (optimizer, H), the learning rate with the lowest mean final loss."""
    best: dict[tuple[str, int | None], Setting] = {}
    for s in settings:
        key = (s.optimizer, s.inner_steps)
        if key not in best or s.final_mean < best[key].final_mean:
            best[key] = s
    return best


def results_table(best: dict[tuple[str, int | None], Setting], baseline: str = "AdamW") -> tuple[str, list[dict]]:
    """The markdown table (and its rows) with speedups against the baseline's final loss."""
    base = [s for (name, _), s in best.items() if name == baseline]
    if not base:
        raise ValueError(f"no {baseline} runs to compare against")
    base_curve = mean_curve(base[0].curves)
    target, base_steps = base_curve[max(base_curve)], float(max(base_curve))
    rows = []
    for (name, h), s in sorted(best.items(), key=lambda kv: (kv[0][0] != baseline, kv[0][0], kv[0][1] or 0)):
        # the baseline defines the target at its last step (an earlier dip of a noisy curve
        # below its own final value does not count as a speedup of the baseline)
        needed = base_steps if name == baseline else steps_to_reach(mean_curve(s.curves), target)
        rows.append(dict(
            optimizer=name, inner_steps=h, lr=s.lr, final_mean=s.final_mean, final_std=s.final_std,
            seeds=len(s.curves), steps_to_target=needed, speedup=speedup_percent(needed, base_steps),
        ))
    lines = [
        "| optimizer | H | lr | final val loss (mean ± std) | seeds | steps to AdamW's final loss | speedup |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        steps = "not reached" if r["steps_to_target"] is None else f"{r['steps_to_target']:.0f}"
        speed = "—" if r["speedup"] is None else f"{r['speedup']:+.1f}%"
        h = "—" if r["inner_steps"] is None else str(r["inner_steps"])
        lines.append(
            f"| {r['optimizer']} | {h} | {r['lr']:g} | {r['final_mean']:.4f} ± {r['final_std']:.4f} | "
            f"{r['seeds']} | {steps} | {speed} |"
        )
    return "\n".join(lines), rows
