"""A study's tuned settings (``tuned.json``, e.g. ``docs/results/tuned.json``), written and read
here, one schema::

    {"version": 1, "study": name, "spec": the spec's path, "data": the data folder's name,
     "setup": the runs' setup (``spec.SETUP_DEFAULTS``'s keys), "selected_on": how the choice was made,
     "final_seeds": [...], "h_mapping": how H is read (``table4.MAPPING_NOTE``),
     "methods": {optimizer name: {"optimizer": its [optimizer] values (``spec.optimizer_fields``),
                                  "knobs": the chosen setting, "tuning_loss": float | null,
                                  "H": H described for a reader}}}

The reader checks that every method is a known optimizer and that its ``[optimizer]`` values
are its knobs' (``optimizer_fields`` of the knobs and the setup), so a hand edit of one and
not the other is an error rather than a silent mix.

A study run for some of its optimizers (``--optimizers``) adds them to an existing file of the
same study, setup, data and final seeds, keeping the others' entries (``extendable_settings``
checks that before any run; ``with_kept_methods`` merges after).
"""

from __future__ import annotations

import json
import os
from typing import Any

from gpa_titan.analysis.setting import SettingRuns
from gpa_titan.optim.table4 import MAPPING_NOTE

from .planner import MethodOutcome
from .spec import METHOD_KNOBS, SETUP_DEFAULTS, StudySpec, StudySpecError, optimizer_fields

TUNED_VERSION = 1
WRITTEN_BY = "scripts/bench_convergence.py --study SPEC --tuned FILE"


def tuned_settings(spec: StudySpec, spec_path: str, data: str, selected_on: str,
                   outcomes: dict[str, MethodOutcome]) -> dict[str, Any]:
    """The tuned settings of a finished study (``outcomes``: optimizer name -> its outcome)."""
    tuned = {"version": TUNED_VERSION, "study": spec.name, "spec": os.path.relpath(spec_path),
             "data": os.path.basename(data.rstrip("/")), "setup": spec.setup, "selected_on": selected_on,
             "final_seeds": spec.final_seeds, "h_mapping": MAPPING_NOTE, "methods": {}}
    for name, o in outcomes.items():
        fields = optimizer_fields(name, o.chosen, spec.setup)
        last = o.phases[-1] if o.phases else None
        described = SettingRuns(name, {k: v for k, v in fields.items() if k != "name"}, spec.setup["steps"], [{}])
        tuned["methods"][name] = {"optimizer": fields, "knobs": o.chosen,
                                  "tuning_loss": None if last is None else last.chosen_final,
                                  "H": described.describe_h()}
    return tuned


def write_tuned_settings(path: str, tuned: dict[str, Any]) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(tuned, f, indent=1)


def setup_of(tuned: dict[str, Any]) -> dict[str, Any]:
    """The runs' setup of tuned settings (defaults for keys an older file lacks)."""
    return dict(SETUP_DEFAULTS) | tuned.get("setup", {})


def load_tuned_settings(path: str) -> dict[str, Any]:
    """A study's tuned settings; ``StudySpecError`` (starting with ``path``) if the file is
    missing, is not one, or is not consistent."""
    try:
        with open(path) as f:
            tuned = json.load(f)
    except (OSError, ValueError) as e:
        raise StudySpecError(f"{path}: {e}; tuned settings are written by {WRITTEN_BY}") from None
    if not isinstance(tuned, dict) or not isinstance(tuned.get("methods"), dict) or "setup" not in tuned:
        raise StudySpecError(f"{path}: not a study's tuned settings (no \"methods\" or \"setup\"); write it with "
                             f"{WRITTEN_BY}")
    if not tuned["methods"]:
        raise StudySpecError(f"{path}: \"methods\" is empty (write it with --study)")
    setup = setup_of(tuned)
    for name, entry in tuned["methods"].items():
        if name not in METHOD_KNOBS:
            raise StudySpecError(f"{path}: unknown optimizer {name!r}")
        knobs = entry.get("knobs", {})
        missing = [k for k in METHOD_KNOBS[name] if k not in knobs]
        if missing:
            raise StudySpecError(f"{path}: {name}'s knobs {knobs} lack {missing} (rerun the study)")
        fields = optimizer_fields(name, knobs, setup)
        if entry.get("optimizer") and dict(entry["optimizer"]) != fields:
            raise StudySpecError(f"{path}: {name}'s optimizer values {entry['optimizer']} do not match its knobs "
                                 f"{knobs} (edit both, or rerun the study)")
    return tuned


# what must agree for a study run of some optimizers to add them to an existing tuned file
SAME_STUDY_KEYS = ("study", "setup", "data", "final_seeds", "h_mapping")


def extendable_settings(path: str, spec: StudySpec, data: str, optimizers: list[str]) -> dict[str, Any] | None:
    """The tuned settings at ``path`` that a study of ``optimizers`` only will add to (None: no
    file there). ``StudySpecError`` naming the file, the key that differs and the fix when the
    file belongs to another study, setup, data or final seeds (checked before any run, so a
    finished study is never refused at the end)."""
    if not os.path.exists(path):
        return None
    existing = load_tuned_settings(path)
    ours = tuned_settings(spec, path, data, "", {})  # this study's file, without methods
    for key in SAME_STUDY_KEYS:
        theirs = setup_of(existing) if key == "setup" else existing.get(key)
        if theirs != ours[key]:
            raise StudySpecError(f"{path}: its {key} {theirs!r} is not this study's {ours[key]!r}, so the tuned "
                                 f"settings of {', '.join(optimizers)} cannot join it: give another --tuned file")
    return existing


def with_kept_methods(tuned: dict[str, Any], existing: dict[str, Any] | None, order: list[str]) -> dict[str, Any]:
    """``tuned`` (a study of some optimizers) with the entries of ``existing`` it did not rerun,
    methods in ``order`` (the spec's); ``tuned`` itself when there is no existing file."""
    if existing is None:
        return tuned
    methods = existing["methods"] | tuned["methods"]
    return tuned | {"methods": {name: methods[name] for name in sorted(methods, key=lambda n: (
        order.index(n) if n in order else len(order), n))}}
