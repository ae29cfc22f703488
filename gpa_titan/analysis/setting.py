"""The analysis model: ``SettingRuns``, one setting of one optimizer and its runs (seeds), and
how the best settings are chosen. Every table and figure (``speedup``, ``figures``,
``plots``, ``report``) is a view of a list of these.

H is the registry's ``h_of_setting`` (DiLoCo's inner steps, GPA's Table-4 H of its mu_x);
tables and figures group and show it by ``h_key``.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from gpa_titan.optim.registry import H_OPTIMIZERS, SETTING_ORDER, h_of_setting, window_of_setting
from gpa_titan.optim.table4 import averaging_window, gpa_mu_x, paper_equivalent_h

from .formatting import MISSING, show_value
from .grouping import Group

LR_KEY = "optimizer.lr"
H_METHODS = tuple(sorted(H_OPTIMIZERS))  # the optimizers that have an H (``SettingRuns.h``), by name
OPTIMIZER_PREFIX = "optimizer."
NOT_SETTINGS = ("optimizer.name", "optimizer.implementation")  # optimizer keys that are not its values
NOT_DESCRIBED = ("eps", "weight_decay", "warmup_steps")  # the same in every run of a study: left out of descriptions
SHORT = {"beta1": "b1", "beta2": "b2", "inner_steps": "H", "outer_lr": "outer lr", "outer_momentum": "outer mom"}


def mean_curve(curves: list[dict[int, float]]) -> dict[int, float]:
    """Pointwise mean over seeds at the evaluation steps they all have."""
    steps = set.intersection(*(set(c) for c in curves)) if curves else set()
    return {s: statistics.fmean(c[s] for c in curves) for s in sorted(steps)}


def h_key(h: float) -> int | float:
    """H for grouping into columns and showing: the nearest integer when within 2% (Table 4's
    rounded mu_x give e.g. 31.87 for H = 32), else 3 significant digits."""
    if h >= 1 and abs(h - round(h)) <= 0.02 * h:
        return round(h)
    return float(f"{h:.3g}")


def gpa_window(h: float) -> float:
    """GPA's averaging window in steps at Table 4's mu_x for ``h`` (a column of Table 2 and Figure 9)."""
    return averaging_window(gpa_mu_x(h))


@dataclass
class SettingRuns:
    """One setting of one optimizer and its seeds' validation curves.

    Args:
        optimizer (str): ``[optimizer] name``.
        settings (dict): its ``[optimizer]`` values (lr, beta1, beta2, mu_x, mu_y, inner_steps, ...),
            without ``name`` and ``implementation``; ``lr`` is required.
        steps (int): the run's length T (``[training] steps``).
        curves (list[dict[int, float]]): step -> validation loss, one per seed; ``{}`` for a seed
            that diverged. Default: none.
        runs (list[str]): the seeds' dump folders (for the record). Default: none.
        config (dict): the flattened ``section.key`` values that define the setting (see
            ``grouping``); tables show those that tell two settings of one (optimizer, H) apart.
            Default: empty.
    """

    optimizer: str
    settings: dict[str, Any]
    steps: int
    curves: list[dict[int, float]] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_group(cls, group: Group) -> SettingRuns:
        """The setting of runs grouped by ``grouping.group_runs`` (its ``[optimizer]`` values from
        the group's setting keys; T from ``training.steps``, else the last logged step)."""
        first = group.runs[0].config
        settings = {k.removeprefix(OPTIMIZER_PREFIX): v for k, v in group.setting.items()
                    if k.startswith(OPTIMIZER_PREFIX) and k not in NOT_SETTINGS}
        settings.setdefault("lr", first[LR_KEY])  # even where --ignore-key took it out of the setting
        curves = [r.curve for r in group.runs]
        steps = first.get("training.steps")
        if not isinstance(steps, int):
            steps = max(max(c) for c in curves)
        return cls(first["optimizer.name"], settings, steps, curves, [r.path for r in group.runs],
                   dict(group.setting))

    @property
    def lr(self) -> float:
        return float(self.settings["lr"])

    @property
    def h(self) -> float | None:
        """DiLoCo's H, or GPA's Table-4 H (mu = 0.9); None for the others (and GPA with mu_x = 0)."""
        return h_of_setting(self.optimizer, self.settings)

    @property
    def h_column(self) -> int | float | None:
        """H as tables group and show it (``h_key``); None without an H."""
        h = self.h
        return None if h is None else h_key(h)

    @property
    def label(self) -> str:
        """The optimizer and its H, e.g. ``GPA-AdamW (H=32)``."""
        return self.optimizer + ("" if self.h is None else f" (H={show_value(self.h_column)})")

    @property
    def finals(self) -> list[float]:
        """Each seed's last validation loss (inf for a diverged seed)."""
        return [c[max(c)] if c else math.inf for c in self.curves]

    @property
    def final_mean(self) -> float:
        return statistics.fmean(self.finals) if self.curves else math.inf

    @property
    def final_std(self) -> float:
        finals = self.finals
        return statistics.stdev(finals) if len(finals) > 1 and all(map(math.isfinite, finals)) else 0.0

    @property
    def diverged(self) -> bool:
        return not math.isfinite(self.final_mean)

    @property
    def mean(self) -> dict[int, float]:
        """The mean curve over the seeds that did not diverge."""
        return mean_curve([c for c in self.curves if c])

    def describe_settings(self) -> str:
        """Its values in ``SETTING_ORDER``, short (``lr 0.008, b1 0.9, b2 0.95, mu_x 0.9895, mu_y 0.4``)."""
        keys = [k for k in SETTING_ORDER if k in self.settings and k not in NOT_DESCRIBED]
        return ", ".join(f"{SHORT.get(k, k)} {show_value(self.settings[k])}" for k in keys)

    def describe_h(self) -> str:
        """H with its paper-equivalent H and its window's share of the run (``—`` without an H)."""
        if self.h is None:
            return MISSING
        window = window_of_setting(self.optimizer, self.settings)
        return (f"{show_value(self.h_column)} (paper-eq. {show_value(paper_equivalent_h(self.h, self.steps), 3)}; "
                f"window {show_value(window, 3)} steps = {show_value(100 * window / self.steps, 2)}% of run)")


# ------------------------------------------------------------------------------ choosing the best
def best(records: list[SettingRuns]) -> SettingRuns | None:
    """The setting with the lowest mean final loss (the first of equals); a diverged one only if
    all diverged (None: no settings)."""
    finite = [r for r in records if not r.diverged]
    return min(finite, key=lambda r: r.final_mean) if finite else (records[0] if records else None)


def finite_best(records: list[SettingRuns]) -> SettingRuns | None:
    """``best``, or None if every setting diverged."""
    chosen = best(records)
    return chosen if chosen is not None and not chosen.diverged else None


def optimizer_and_h(r: SettingRuns) -> Hashable:
    """The default grouping key for choosing the best lr: (optimizer, H)."""
    return (r.optimizer, r.h_column)


def all_but_lr(r: SettingRuns) -> Hashable:
    """The grouping key that keeps every setting apart except by ``optimizer.lr``: the best lr
    is chosen per (optimizer, H) and everything else that defines the setting."""
    return (r.optimizer, r.h_column, json.dumps({k: v for k, v in r.config.items() if k != LR_KEY},
                                                sort_keys=True, default=str))


def grouped_by(records: list[SettingRuns], key: Callable[[SettingRuns], Hashable]
               ) -> dict[Hashable, list[SettingRuns]]:
    """The settings by ``key``, in the order each key is first seen."""
    out: dict[Hashable, list[SettingRuns]] = {}
    for r in records:
        out.setdefault(key(r), []).append(r)
    return out


def best_by_final_loss(records: list[SettingRuns], key: Callable[[SettingRuns], Hashable] = optimizer_and_h
                       ) -> dict[Hashable, SettingRuns]:
    """For every value of ``key`` (default: (optimizer, H)), the ``best`` of its settings (e.g. the
    learning rate with the lowest mean final loss)."""
    return {k: best(group) for k, group in grouped_by(records, key).items()}


def distinguishing_keys(records: list[SettingRuns]) -> list[str]:
    """Config keys (besides the lr) that differ between settings of the same (optimizer, H): the
    extra columns that tell those rows apart."""
    keys: set[str] = set()
    for group in grouped_by(records, optimizer_and_h).values():
        for k in sorted({k for r in group for k in r.config}):
            if k != LR_KEY and len({json.dumps(r.config.get(k), default=str) for r in group}) > 1:
                keys.add(k)
    return sorted(keys)
