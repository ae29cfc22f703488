"""Which runs are seeds of one setting: grouping runs by their resolved config.

Two runs are seeds of the same setting when their resolved configs (``run_info.json``'s
``"config"``, flattened to ``section.key``) agree on every key except the seed
(``SEED_KEY``), the keys listed in ``IGNORED_KEYS`` (they do not change what is computed),
and the optimizer keys that the run's optimizer does not use. ``gpa_titan/runs.py`` is the
one place that says which keys these are (the trainer's resume check reads it too);
everything else (the schedule, the data, the model, batch sizes, the run length, every
optimizer hyperparameter) separates settings.

Runs of one setting are averaged only if they are equally long (``RunGroupingError``
otherwise, naming the runs).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from gpa_titan.runs import IGNORED_KEYS, NOT_IGNORED_KEYS, SEED_KEY, separates_settings, show


class RunGroupingError(ValueError):
    """Runs that cannot be combined as asked; the message names them and the fix."""


def is_ignored(key: str, extra: Iterable[str] = ()) -> bool:
    """Whether ``key`` (``section.key``) is the seed or does not change the math (``gpa_titan.runs``)."""
    return not separates_settings(key, extra)


@dataclass
class Run:
    """One finished run: its dump folder, flattened config and validation curve."""

    path: str
    config: dict[str, Any]
    curve: dict[int, float]

    @property
    def seed(self) -> Any:
        return self.config.get(SEED_KEY)

    @property
    def last_step(self) -> int:
        return max(self.curve)

    @property
    def expected_last_step(self) -> int | None:
        """The last step a finished run validates at (TorchTitan: step 1 and every ``freq``-th)."""
        steps, freq = self.config.get("training.steps"), self.config.get("validation.freq")
        if not isinstance(steps, int) or not isinstance(freq, int) or freq < 1:
            return None
        return max(1, steps - steps % freq)


@dataclass
class Group:
    """Runs that are seeds of one setting, and the setting (the config keys that define it)."""

    setting: dict[str, Any]
    runs: list[Run] = field(default_factory=list)


def setting_of(config: dict[str, Any], unused: Callable[[dict[str, Any]], Iterable[str]] | None = None,
               ignore: Iterable[str] = ()) -> dict[str, Any]:
    """The keys of a flattened config that define its setting: all but the seed, the ignored
    keys and ``unused(config)`` (e.g. the keys of optimizers the run does not use)."""
    drop = set(unused(config)) if unused else set()
    return {k: v for k, v in sorted(config.items()) if k not in drop and not is_ignored(k, ignore)}


def _frozen(setting: dict[str, Any]) -> str:
    return json.dumps(setting, sort_keys=True, default=str)


def group_runs(runs: list[Run], unused: Callable[[dict[str, Any]], Iterable[str]] | None = None,
               ignore: Iterable[str] = ()) -> list[Group]:
    """Runs grouped by setting (in the order first seen), each group checked to be of equal length."""
    groups: dict[str, Group] = {}
    ignore = list(ignore)
    for run in runs:
        setting = setting_of(run.config, unused, ignore)
        groups.setdefault(_frozen(setting), Group(setting)).runs.append(run)
    for group in groups.values():
        check_same_length(group)
    return list(groups.values())


def check_same_length(group: Group) -> None:
    """Refuse to average seeds that are not equally long (different ``training.steps`` or a
    different last logged step, e.g. a crashed or paused run)."""
    lengths = {(r.config.get("training.steps"), r.last_step) for r in group.runs}
    if len(lengths) > 1:
        listed = "; ".join(f"{r.path}: training.steps {r.config.get('training.steps')}, last logged step "
                           f"{r.last_step}" for r in group.runs)
        raise RunGroupingError(
            f"these runs are seeds of one setting but of different length, and are not averaged: {listed}. "
            "Finish the shorter runs (rerun the same command with the same dump folder: it resumes from "
            "the latest checkpoint), or leave them out"
        )


def differing_keys(settings: list[dict[str, Any]]) -> list[str]:
    """The keys whose value is not the same in all ``settings`` (missing counts as a value)."""
    keys = sorted({k for s in settings for k in s})
    return [k for k in keys if len({_frozen({k: s.get(k, "<unset>")}) for s in settings}) > 1]


def describe_grouping(groups: list[Group], ignore: Iterable[str] = ()) -> str:
    """How runs were grouped: what was ignored, which keys separate the settings, and which
    runs are seeds of each."""
    n = sum(len(g.runs) for g in groups)
    extra = list(ignore)
    lines = [
        f"{n} run(s) in {len(groups)} setting(s). Runs are seeds of one setting when their resolved configs agree "
        f"on every key but the seed ({SEED_KEY}), unused optimizer keys and keys that do not change the math: "
        + ", ".join([*IGNORED_KEYS, *extra])
        + f" (except {', '.join(NOT_IGNORED_KEYS)}; see gpa_titan/runs.py)."
    ]
    keys = differing_keys([g.setting for g in groups])
    lines.append("Keys that differ between settings: " + (", ".join(keys) if keys else "none (one setting)"))
    for i, g in enumerate(groups, 1):
        label = ", ".join(f"{k}={show(g.setting.get(k, '<unset>'))}" for k in keys) or "the only setting"
        seeds = ", ".join(show(r.seed) for r in g.runs)
        lines.append(f"  setting {i} ({label}): {len(g.runs)} run(s), seeds {seeds}, last step "
                     f"{g.runs[0].last_step}: " + " ".join(r.path for r in g.runs))
        short = [r for r in g.runs if r.last_step < (r.expected_last_step or 0)]
        if short:
            lines.append(f"    warning: unfinished: validation loss logged up to step {short[0].last_step}, but "
                         f"training.steps {short[0].config['training.steps']} validates at step "
                         f"{short[0].expected_last_step}")
        repeated = sorted({show(r.seed) for r in g.runs if [q.seed for q in g.runs].count(r.seed) > 1})
        if repeated:
            lines.append(f"    warning: seed(s) {', '.join(repeated)} appear more than once in this setting "
                         "(the same run given twice, or a copy?)")
    return "\n".join(lines)
