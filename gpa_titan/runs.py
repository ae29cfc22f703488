"""What identifies a run, for the trainer (may this launch resume that run?) and for the
analysis (are these runs seeds of one setting?): the seed key, the keys that change what a
run computes and those that only say how it is laid out, the flattened ``section.key`` form
of a resolved config, the files a run records it in (``run_info.json`` in the dump folder,
``gpa_titan_config.json`` in each checkpoint folder), and the exit codes by which
``python -m gpa_titan.train`` says how a run ended (what launchers such as the study and
``slurm/train.sbatch`` act on). Plain Python: no TorchTitan, no torch.

Every key of a resolved config changes the math of a run except those matched by
``IGNORED_KEYS`` (logging, where the run writes, compile, ...), with the exceptions in
``NOT_IGNORED_KEYS``. The seed changes the math: a resume must keep it, but runs that differ
only in it are seeds of one setting. A resume may also change the ``LAYOUT_KEYS``: how
ranks split the same computation, and the warm start (``checkpoint.initial_load_*`` selects
the weights a run starts from, so it separates settings, but it is read only when a run
starts without checkpoints, so a resume that changes it computes the same).
"""

from __future__ import annotations

import fnmatch
import json
import os
from collections.abc import Iterable
from typing import Any

SEED_KEY = "debug.seed"
RUN_INFO = "run_info.json"  # in a dump folder: {"config": the resolved config, "launches": [one per launch]}
CHECKPOINT_CONFIG = "gpa_titan_config.json"  # in a checkpoint folder: the resolved config it was written under
MODEL_ONLY = "gpa_titan_model_only"  # a key of CHECKPOINT_CONFIG: the final model-only export

# how `python -m gpa_titan.train` ends, besides 0 (finished or stopped with a checkpoint)
EXIT_SETTINGS = 2  # a settings mistake, one `error:` line (like argparse's usage errors)
EXIT_DIVERGED = 3  # the divergence guard stopped the run (every rank sees the same values)
EXIT_PREEMPTED_UNSAVED = 4  # preempted with checkpoints off: stopped, nothing saved (slurm/train.sbatch: no requeue)
EXIT_PEER_FAILED = 1  # another rank failed first and said why; this one stops without a line of its own

# key (fnmatch pattern over "section.key") -> why it does not change the math of a run
IGNORED_KEYS: dict[str, str] = {
    "job.config_file": "where the settings were read from (the resolved values are compared)",
    "job.dump_folder": "where the run writes",
    "job.description": "a label",
    "job.print_config": "logging",
    "job.save_config_file": "logging",
    "job.custom_config_module": "which module declares the settings",
    "job.stop_after_steps": "where a run pauses for a resume (the run's length is checked from its logs)",
    "metrics.*": "what is logged, where and how often",
    "profiling.*": "tracing",
    "checkpoint.*": "when and where checkpoints are written (but see NOT_IGNORED_KEYS)",
    "validation.freq": "how often the fixed validation set is evaluated (curves are compared at common steps)",
    "comm.*": "collective timeouts and traces",
    "memory_estimation.*": "a memory estimate before training",
    "activation_checkpoint.*": "recomputation in the backward pass (the same values)",
    "compile.*": "torch.compile (the same computation)",
    "optimizer.implementation": "fused / foreach / for-loop compute the same update",
    "experimental.custom_import": "which module registers the train spec ([model] name selects it)",
    "training.gc_freq": "Python garbage collection",
    "training.gc_debug": "Python garbage collection",
    "model.print_after_conversion": "logging",
    "debug.deterministic_warn_only": "warnings",
}
# exceptions to the patterns above: they do change what a run computes
NOT_IGNORED_KEYS: dict[str, str] = {
    "checkpoint.initial_load_*": "the weights a run starts from",
}
# keys a resume may change beyond IGNORED_KEYS: the same computation, laid out or started otherwise
LAYOUT_KEYS: dict[str, str] = {
    "parallelism.*": "how ranks split the same computation (the effective global batch is compared)",
    "training.local_batch_size": "the micro-batch (the effective global batch is compared)",
    "job.allow_resume_changes": "this override itself",
    "checkpoint.initial_load_*": "only read when a run starts without checkpoints",
}


def _matches(key: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(key, pattern) for pattern in patterns)


def changes_math(key: str, extra_ignored: Iterable[str] = ()) -> bool:
    """Whether ``key`` (``section.key``) changes what a run computes (the seed does); keys
    matching ``extra_ignored`` (fnmatch patterns) count as not changing it."""
    if _matches(key, NOT_IGNORED_KEYS):
        return True
    return not _matches(key, [*IGNORED_KEYS, *extra_ignored])


def separates_settings(key: str, extra_ignored: Iterable[str] = ()) -> bool:
    """Whether runs that differ in ``key`` are different settings (not seeds of one)."""
    return key != SEED_KEY and changes_math(key, extra_ignored)


def separates_resumed_run(key: str) -> bool:
    """Whether a resume that changes ``key`` would continue a run with other math (the seed counts)."""
    return changes_math(key) and not _matches(key, LAYOUT_KEYS)


def flatten(config: dict, prefix: str = "") -> dict[str, Any]:
    """``{"optimizer": {"lr": 1e-3}}`` -> ``{"optimizer.lr": 1e-3}`` (nested tables too)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def show(value: Any) -> str:
    """A config value, short and exact (``0.003``, ``"cosine"``, ``true``)."""
    if isinstance(value, float):
        return f"{value:g}" if float(f"{value:g}") == value else repr(value)
    return json.dumps(value, default=str)


def read_run_info(dump_folder: str) -> dict[str, Any] | None:
    """``<dump_folder>/run_info.json`` (``{"config": ..., "launches": [...]}``), or None if absent."""
    path = os.path.join(dump_folder, RUN_INFO)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def write_checkpoint_config(checkpoint_dir: str, config: dict[str, Any], model_only: bool = False) -> None:
    """Record the run's config in a checkpoint folder (and whether it holds the model weights only)."""
    os.makedirs(checkpoint_dir, exist_ok=True)
    with open(os.path.join(checkpoint_dir, CHECKPOINT_CONFIG), "w") as f:
        json.dump({**config, MODEL_ONLY: model_only}, f, indent=2, default=str)


def read_checkpoint_config(checkpoint_dir: str) -> tuple[dict[str, Any], bool] | None:
    """The config a checkpoint folder was written under and whether it holds the model weights
    only; None if it has no record."""
    path = os.path.join(checkpoint_dir, CHECKPOINT_CONFIG)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        written = json.load(f)
    model_only = bool(written.pop(MODEL_ONLY, False))
    return written, model_only


def is_model_only(checkpoint_dir: str) -> bool:
    """Whether a checkpoint folder holds a model-only export (False if it has no record)."""
    record = read_checkpoint_config(checkpoint_dir)
    return record is not None and record[1]
