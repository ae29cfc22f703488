"""What makes a run the same run: one run per dump folder, and resumes that compute what the
checkpoint's run computed.

A run is identified by its resolved config with the effective global batch written in
(``training.global_batch_size = -1`` depends on the number of ranks). A resume must agree
with it on every key that changes the math, the seed included, except the layout keys and
the keys of optimizers the run does not use; ``gpa_titan/runs.py`` says which keys these are
(``separates_resumed_run``: logging, checkpoint interval, validation frequency,
``stop_after_steps``, compile, parallelism, the warm-start path, ...).

- ``run_info.json`` in the dump folder records the run's config and every launch; a launch
  whose config differs is refused (``RunIdentityError``) unless ``[job] allow_resume_changes``
  is set, which logs every changed key and appends it to the run's history.
- Every checkpoint folder gets ``gpa_titan_config.json``; a resume compares against it the
  same way, and a checkpoint written by another optimizer gets its own message.
- ``DumpFolderLock`` stops two concurrent runs from writing into one folder.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from typing import Any

from torchtitan.tools.logging import logger

from gpa_titan.optim.registry import unused_optimizer_keys
from gpa_titan.runs import (
    CHECKPOINT_CONFIG,
    RUN_INFO,
    flatten,
    read_checkpoint_config,
    read_run_info,
    separates_resumed_run,
    show,
)

from .job_config import ConfigError

LOCK_FILE = ".gpa_titan.lock"
# keys that set the shapes of the saved state: a checkpoint cannot be loaded across a change, allowed or not
SHAPE_KEYS = ("model.name", "model.flavor", "model.vocab_size")


class RunIdentityError(ConfigError):
    """A launch would mix two different runs (folder or checkpoint); the message says how to proceed."""


def effective_global_batch(job_config, world_size: int) -> int:
    """Sequences per optimizer step: ``global_batch_size``, or local batch x data-parallel ranks."""
    training, par = job_config.training, job_config.parallelism
    if training.global_batch_size > 0:
        return training.global_batch_size
    non_dp = max(1, par.tensor_parallel_degree) * max(1, par.pipeline_parallel_degree) * max(
        1, par.context_parallel_degree
    )
    return training.local_batch_size * max(1, world_size // non_dp)


def run_config(job_config, world_size: int) -> dict[str, Any]:
    """The resolved config as recorded for this run (effective global batch written in)."""
    config = job_config.to_dict()
    config.setdefault("training", {})["global_batch_size"] = effective_global_batch(job_config, world_size)
    return config


def math_differences(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(key, old value, new value) for every key that changes what the run computes."""
    old_flat, new_flat = flatten(old), flatten(new)
    unused = set(unused_optimizer_keys(old_flat)) & set(unused_optimizer_keys(new_flat))
    out = []
    for key in sorted(set(old_flat) | set(new_flat)):
        if key in unused or not separates_resumed_run(key):
            continue
        a, b = old_flat.get(key, "<absent>"), new_flat.get(key, "<absent>")
        if a != b:
            out.append((key, a, b))
    return out


def describe_differences(differences: list[tuple[str, Any, Any]]) -> str:
    return "; ".join(f"{key}: {show(a)} -> {show(b)}" for key, a, b in differences)


def check_folder(dump_folder: str, config: dict[str, Any], allow_changes: bool) -> list[tuple[str, Any, Any]]:
    """Refuse a dump folder that holds a different run; return the allowed differences."""
    info = read_run_info(dump_folder)
    if info is None:
        return []
    path = os.path.join(dump_folder, RUN_INFO)
    previous = info.get("config", {})
    differences = math_differences(previous, config)
    if differences and not allow_changes:
        raise RunIdentityError(
            f"--job.dump_folder {dump_folder} holds another run: {describe_differences(differences)} "
            f"(the run there, from {path}, -> this launch). Use a new --job.dump_folder for a new run, or, to "
            "continue that run with these changes on purpose, add --job.allow_resume_changes (every changed key "
            f"is logged and recorded in {RUN_INFO}'s history)."
        )
    return differences


def check_checkpoint(checkpoint_dir: str, config: dict[str, Any], allow_changes: bool,
                     model_only: bool = False) -> list[tuple[str, Any, Any]]:
    """Refuse to load a checkpoint written under different math (or, for ``model_only``, a
    model of another shape); return the allowed differences."""
    record = read_checkpoint_config(checkpoint_dir)
    if record is None:
        logger.warning(f"{checkpoint_dir} has no record of the settings it was written under ({CHECKPOINT_CONFIG}): "
                       "loading it without checking them")
        return []
    written, _ = record
    differences = math_differences(written, config)
    shapes = [d for d in differences if d[0] in SHAPE_KEYS]
    if shapes:
        raise RunIdentityError(
            f"the checkpoint {checkpoint_dir} holds a model of another shape ({describe_differences(shapes)}, "
            "checkpoint -> this launch): its weights cannot be loaded into this model, with or without "
            "--job.allow_resume_changes. Use a new --job.dump_folder and start this model from scratch."
        )
    if model_only:
        return []
    old_name = written.get("optimizer", {}).get("name")
    new_name = config.get("optimizer", {}).get("name")
    if old_name != new_name:
        raise RunIdentityError(
            f"the checkpoint {checkpoint_dir} was written by {old_name} and this run uses {new_name}: their "
            f"optimizer states differ, so it cannot be resumed. To start {new_name} from its weights, use a new "
            f"--job.dump_folder with --checkpoint.initial_load_path {checkpoint_dir} "
            "--checkpoint.initial_load_model_only (a warm start: fresh optimizer state and schedule)."
        )
    if differences and not allow_changes:
        raise RunIdentityError(
            f"the checkpoint {checkpoint_dir} was written under other settings: {describe_differences(differences)} "
            "(checkpoint -> this launch); resuming would silently continue with a mix. Use a new "
            "--job.dump_folder, or add --job.allow_resume_changes to continue with these changes on purpose "
            f"(each is logged and recorded in {RUN_INFO}'s history)."
        )
    for key, old, new in differences:
        logger.warning(f"Continuing from {checkpoint_dir} with {key} changed from {show(old)} to {show(new)}")
    return differences


class DumpFolderLock:
    """An exclusive ``flock`` on ``<dump_folder>/.gpa_titan.lock`` held for the process's life
    (released by the OS when the process ends, also on ``kill -9``).

    Args:
        dump_folder (str): the run's dump folder (created if missing).
    """

    def __init__(self, dump_folder: str) -> None:
        os.makedirs(dump_folder, exist_ok=True)
        self.path = os.path.join(dump_folder, LOCK_FILE)
        self._file = open(self.path, "a+")  # noqa: SIM115  (held open for the process's life)
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._file.seek(0)
            holder = self._file.read().strip() or "another process"
            self._file.close()
            raise RunIdentityError(
                f"--job.dump_folder {dump_folder} is in use by another run ({holder}); two runs in one folder "
                "would mix their checkpoints and logs. Wait for it to end, or use another --job.dump_folder."
            ) from None
        self._file.seek(0)
        self._file.truncate()
        self._file.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}")
        self._file.flush()
