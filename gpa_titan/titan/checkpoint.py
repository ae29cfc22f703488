"""Checkpoints that hold the evaluation weights.

``EvalWeightsCheckpointer`` wraps TorchTitan's CheckpointManager (same interface, same
DCP files). Around every save that will actually write, it switches the optimizers to
eval mode, so the model weights in every checkpoint and in the final model-only export
are the ones to evaluate and ship (x for GPA-AdamW, the outer weights for DiLoCo).
The optimizer state saved next to them (z, or the inner weights, plus the mode flag)
holds everything needed to continue exactly. After a load it switches back to train
mode, and re-anchors optimizers that have not stepped (a model-only load).

Every checkpoint folder also records the run's config (``run_identity``); a resume is
checked against it first (settings, model shape, number of data-parallel ranks), and a
checkpoint that cannot be read (a damaged file) is named and skipped for the previous complete
one. After a load, this launch's optimizer hyperparameters and learning-rate schedule are put
back into the optimizers (a checkpoint's param groups would otherwise silently restore the old
ones over a change made on purpose with ``--job.allow_resume_changes``).

A warm start (``--checkpoint.initial_load_path``) is read whenever the run has no checkpoint
of its own yet, whether or not its checkpoint folder exists. Extending a finished run keeps
its final model-only export under its own name (``final-model-<step>``), so the longer run
never overwrites it.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.api import CheckpointException
from torchtitan.tools.logging import logger

from gpa_titan.optim.base import local
from gpa_titan.runs import is_model_only, write_checkpoint_config

from .cpu_collectives import all_ranks, cpu_group
from .job_config import ConfigError
from .monitor import DivergenceError
from .run_identity import RunIdentityError, check_checkpoint


class CheckpointError(ConfigError):
    """A checkpoint folder that cannot be written or lacks the room for one checkpoint, or a
    checkpoint that cannot be read; the message names the folder and the fix. (A checkpoint of
    another run or model is a ``RunIdentityError``.)"""

def all_parameters_finite(model_parts: list[torch.nn.Module]) -> bool:
    """Whether every rank's local parameter shards are finite (one host sync and one CPU
    collective: called only before a checkpoint is written)."""
    checks = [torch.isfinite(local(p)).all() for model in model_parts for p in model.parameters()]
    return all_ranks(bool(torch.stack(checks).all()) if checks else True)


FINAL_EXPORT = "final-model-{step}"  # a kept final export: no "step-" in the name, so no loader or purge sees it
MISMATCH_MARKERS = ("Missing key", "Unexpected key", "ize mismatch", "shape mismatch")  # DCP: state that does not fit


def nearest_existing(path: str) -> str:
    """``path`` or its closest ancestor that exists."""
    path = os.path.abspath(path)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return path


def check_checkpoint_folder(folder: str) -> None:
    """Fail at start-up, not at the first save, when the checkpoint folder cannot be written.

    The folder is not created here: TorchTitan reads ``initial_load_path`` only for a run whose
    checkpoint folder does not exist yet (and ``EvalWeightsCheckpointer.load`` for one without
    checkpoints), so the probe goes to the closest existing ancestor."""
    target = nearest_existing(folder)
    try:
        if not os.path.isdir(target):
            raise NotADirectoryError(f"{target} is a file")
        probe = os.path.join(target, f".write_test_{os.getpid()}")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        raise CheckpointError(
            f"[checkpoint] folder {folder} cannot be written ({e.strerror or e}): fix its permissions or point "
            "--job.dump_folder (or --checkpoint.folder) somewhere writable, or set --checkpoint.no-enable"
        ) from None


def checkpoint_bytes(model_parts: list[torch.nn.Module], optimizers) -> int:
    """Bytes one full checkpoint takes (weights and optimizer state of every rank)."""
    tensors = [p for m in model_parts for p in m.parameters()]
    tensors += [v for opt in optimizers.optimizers for st in opt.state.values() for v in st.values()
                if torch.is_tensor(v)]
    local_bytes = sum(local(t).numel() * t.element_size() for t in tensors)
    if dist.is_initialized() and dist.get_world_size() > 1:
        total = torch.tensor([local_bytes], dtype=torch.int64)
        dist.all_reduce(total, group=cpu_group())
        return int(total.item())
    return local_bytes


def check_checkpoint_space(checkpointer, model_parts, optimizers) -> None:
    """Fail at start-up when the checkpoint folder's disk cannot hold one checkpoint; warn when it
    cannot hold the ``keep_latest_k`` (+1 being written) that the run will keep."""
    needed = checkpoint_bytes(model_parts, optimizers)
    if dist.is_initialized() and dist.get_rank() != 0:
        return
    free = shutil.disk_usage(nearest_existing(checkpointer.folder)).free
    gib = 2**30
    if free < needed:
        raise CheckpointError(
            f"[checkpoint] folder {checkpointer.folder} has {free / gib:.2f} GiB free but one checkpoint of this run "
            f"takes about {needed / gib:.2f} GiB: free space there or point --job.dump_folder elsewhere"
        )
    keep = checkpointer.keep_latest_k
    if keep > 0 and free < (keep + 1) * needed:
        logger.warning(
            f"[checkpoint] folder {checkpointer.folder} has {free / gib:.2f} GiB free; keeping {keep} checkpoints of "
            f"about {needed / gib:.2f} GiB each (and writing the next) needs {(keep + 1) * needed / gib:.2f} GiB"
        )


class EvalWeightsCheckpointer:
    """Wraps ``checkpointer`` (a TorchTitan CheckpointManager) for ``optimizers``.

    Before every save that will write, the optimizers switch to eval mode; on an accelerator
    the device is synchronised after that swap so that async staging (which copies on a side
    stream) sees the evaluation weights; and a model with a non-finite weight is never
    written (``DivergenceError``), so ``keep_latest_k`` cannot rotate out the last finite one.

    Args:
        checkpointer: the trainer's CheckpointManager; every other attribute is forwarded.
        optimizers: the EvalWeightsOptimizersContainer being checkpointed.
        lr_schedulers: the trainer's LRSchedulersContainer (its schedule is re-applied after a load).
        run_config (dict): the run's recorded config (``run_identity.run_config``).
        dump_folder (str): ``[job] dump_folder`` (for the commands that messages suggest).
        allow_changes (bool, default False): ``[job] allow_resume_changes``.
    """

    def __init__(self, checkpointer, optimizers, lr_schedulers, run_config: dict, dump_folder: str,
                 allow_changes: bool = False) -> None:
        self._checkpointer = checkpointer
        self._optimizers = optimizers
        self._lr_schedulers = lr_schedulers
        self.run_config = run_config
        self.dump_folder = dump_folder
        self.allow_changes = allow_changes
        self.resume_differences: list = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._checkpointer, name)

    def save(self, curr_step: int, last_step: bool = False) -> None:
        ckpt = self._checkpointer
        if not ckpt._should_save(curr_step, last_step):
            return ckpt.save(curr_step, last_step)
        with self._optimizers.evaluation_weights():
            if not all_parameters_finite(self._optimizers.model_parts):
                raise DivergenceError(
                    f"training diverged: the model holds non-finite weights at step {curr_step}, so its "
                    "checkpoint was not written and the last finite checkpoint is kept. Lower [optimizer] lr or "
                    "lengthen [lr_scheduler] warmup_steps."
                )
            if torch.accelerator.is_available():
                torch.accelerator.synchronize()  # the swap's kernels finish before staging copies
            if not dist.is_initialized() or dist.get_rank() == 0:  # before DCP marks the folder complete
                model_only = last_step and ckpt.last_save_model_only
                write_checkpoint_config(ckpt._create_checkpoint_id(curr_step), self.run_config, model_only)
            ckpt.save(curr_step, last_step)
            ckpt.maybe_wait_for_staging()  # staging copies these weights before train() swaps back

    def force_save(self, curr_step: int) -> bool:
        """A full checkpoint now, whatever the interval (preemption, ``stop_after_steps``); returns
        whether one was written (False with checkpoints off)."""
        ckpt = self._checkpointer
        if not ckpt.enable:
            return False
        interval = ckpt.interval
        ckpt.interval = 1  # makes _should_save true for this step only
        try:
            self.save(curr_step, last_step=False)
            ckpt._async_wait()
        finally:
            ckpt.interval = interval
        return os.path.isfile(os.path.join(ckpt._create_checkpoint_id(curr_step), ".metadata"))

    def complete_steps(self) -> list[int]:
        """The steps of this run's complete checkpoints (their DCP metadata written), newest first."""
        folder = self._checkpointer.folder
        if not os.path.isdir(folder):
            return []
        steps = [int(name[5:]) for name in os.listdir(folder) if name.startswith("step-") and name[5:].isdigit()]
        return sorted((s for s in steps if os.path.isfile(os.path.join(folder, f"step-{s}", ".metadata"))),
                      reverse=True)

    def full_steps(self) -> list[int]:
        """``complete_steps`` without final model-only exports (the ones a run can resume from)."""
        return [s for s in self.complete_steps() if not is_model_only(self._create_checkpoint_id(s))]

    def _warm_start_hint(self, checkpoint_dir: str) -> str:
        return (f"--job.dump_folder {self.dump_folder}-continued --checkpoint.initial_load_path {checkpoint_dir} "
                "--checkpoint.initial_load_model_only")

    def prepare_resume(self, total_steps: int) -> int:
        """Before training: the latest complete step (0: none). Refuses a folder that is ahead of
        ``total_steps`` or holds only a final model-only export, and, when a finished run is
        extended, renames its export ``step-N`` to ``final-model-N`` so the longer run cannot
        overwrite it."""
        folder = self._checkpointer.folder
        steps = self.complete_steps()
        latest = steps[0] if steps else 0
        if latest > total_steps:
            raise RunIdentityError(
                f"{folder} holds step-{latest}, beyond [training] steps = {total_steps}: this launch describes a "
                f"shorter run than the one there. Use a new --job.dump_folder, or set --training.steps to at least "
                f"{latest}."
            )
        if latest == total_steps:
            return latest
        exports = [s for s in steps if is_model_only(self._create_checkpoint_id(s))]
        if exports and len(exports) == len(steps):
            path = self._create_checkpoint_id(exports[0])
            raise RunIdentityError(
                f"{folder} holds only step-{exports[0]}, the final model-only export of a {exports[0]}-step run "
                "(weights without optimizer state), so that run cannot be continued as the same run. To train on "
                f"from its weights, start a new run: add {self._warm_start_hint(path)} to this command."
            )
        rank0 = not dist.is_initialized() or dist.get_rank() == 0
        for step in exports:
            kept = os.path.join(folder, FINAL_EXPORT.format(step=step))
            if rank0:
                os.rename(self._create_checkpoint_id(step), kept)
                logger.info(f"Kept the final model-only export of the {step}-step run as {kept}; this launch "
                            f"continues the run to step {total_steps}")
        if exports:
            all_ranks(True)  # a barrier: no rank lists the folder while rank 0 renames in it
        return latest

    def _data_parallel_ranks_written(self, checkpoint_dir: str) -> int | None:
        """How many data-parallel ranks wrote the checkpoint's data position (None: not recorded)."""
        from torch.distributed.checkpoint import FileSystemReader

        try:
            keys = FileSystemReader(checkpoint_dir).read_metadata().state_dict_metadata
        except Exception:  # unreadable metadata: the load itself reports it
            return None
        ranks = [k for k in keys if k.startswith("dataloader.dp_rank_")]
        return len(ranks) or None

    def _check_data_position(self, checkpoint_dir: str) -> bool:
        """Whether the checkpoint's data position can be loaded (the same number of data-parallel
        ranks); refuses a different number unless changes are allowed."""
        dataloader = self._checkpointer.states.get("dataloader")
        written = self._data_parallel_ranks_written(checkpoint_dir)
        mine = getattr(dataloader, "dp_world_size", None)
        if dataloader is None or written is None or mine is None or written == mine:
            return True
        if not self.allow_changes:
            raise RunIdentityError(
                f"the checkpoint {checkpoint_dir} was written by {written} data-parallel rank(s) and this launch has "
                f"{mine}: which documents each rank reads depends on their number, so the position in the training "
                f"data cannot be carried over. Resume on {written} data-parallel rank(s), or add "
                "--job.allow_resume_changes to continue from it with the training data read again from the start "
                "of the split (model, optimizer state and schedule are restored exactly)."
            )
        logger.warning(
            f"[job] allow_resume_changes: the checkpoint {checkpoint_dir} was written by {written} data-parallel "
            f"rank(s) and this launch has {mine}: the training data restarts from the start of the split "
            "(model, optimizer state and schedule are restored exactly)"
        )
        return False

    def _load_step(self, step: int, with_data: bool) -> bool:
        ckpt = self._checkpointer
        if with_data:
            return ckpt.load(step)
        excluded = list(ckpt.exclude_from_loading)
        ckpt.exclude_from_loading = [*excluded, "dataloader"]
        try:
            return ckpt.load(step)
        finally:
            ckpt.exclude_from_loading = excluded

    def _initial_load(self) -> bool:
        """The warm start: ``initial_load_path`` (model only with ``initial_load_model_only``)."""
        ckpt = self._checkpointer
        path = ckpt.initial_load_path
        if ckpt.initial_load_in_hf:
            path = path or ckpt.sd_adapter.hf_assets_path
        elif not os.path.isfile(os.path.join(path, ".metadata")):
            inside = sorted(n for n in os.listdir(path) if n.startswith("step-")) if os.path.isdir(path) else []
            hint = f"; it holds {', '.join(inside)}: give one of them" if inside else ""
            raise CheckpointError(
                f"[checkpoint] initial_load_path = {path!r} is not a checkpoint (no DCP .metadata file there{hint}). "
                "Point it at one step folder, e.g. <dump folder>/checkpoint/step-<N>."
            )
        model_only = ckpt.initial_load_model_only
        if not ckpt.initial_load_in_hf:
            self.resume_differences = check_checkpoint(path, self.run_config, allow_changes=True,
                                                       model_only=model_only)
        try:
            ckpt.dcp_load(ckpt._states_to_load(model_only), checkpoint_id=path, from_hf=ckpt.initial_load_in_hf,
                          from_quantized=ckpt.initial_load_in_hf_quantized)
        except (Exception, CheckpointException) as e:
            raise RunIdentityError(
                f"[checkpoint] initial_load_path = {path!r} cannot be loaded into this run ({_reason(e)}): it was "
                "written for another model (flavor, vocabulary)"
                + ("" if model_only else " or optimizer (add --checkpoint.initial_load_model_only for its weights)")
                + "."
            ) from e
        what = "model weights (fresh optimizer state and schedule)" if model_only else "full state"
        logger.info(f"Warm start: loaded the {what} of {path}")
        return True

    def load(self, step: int = -1) -> bool:
        ckpt = self._checkpointer
        if not ckpt.enable:
            return False
        if step != -1:  # [checkpoint] load_step: exactly that one
            loaded = ckpt.load(step)
        else:
            candidates = self.full_steps()
            if not candidates:
                loaded = self._initial_load() if ckpt.initial_load_path or ckpt.initial_load_in_hf else False
            else:
                if ckpt.initial_load_path:
                    logger.info(f"Resuming from this run's own checkpoints in {ckpt.folder}; "
                                "[checkpoint] initial_load_path is read only by a run that has none yet")
                loaded = self._load_latest_readable(candidates)
        self._optimizers.train()
        self._optimizers.restart_fresh_state()
        if loaded:
            self._reapply_settings()
        return loaded

    def _load_latest_readable(self, candidates: list[int]) -> bool:
        ckpt = self._checkpointer
        for i, candidate in enumerate(candidates):
            checkpoint_dir = ckpt._create_checkpoint_id(candidate)
            self.resume_differences = check_checkpoint(checkpoint_dir, self.run_config, self.allow_changes)
            with_data = self._check_data_position(checkpoint_dir)
            try:
                return self._load_step(candidate, with_data)
            except (RunIdentityError, CheckpointError, KeyboardInterrupt):
                raise
            except (Exception, CheckpointException) as e:  # unreadable (DCP raises a BaseException)
                reason = _reason(e)
                if any(marker in reason for marker in MISMATCH_MARKERS):
                    raise RunIdentityError(
                        f"the checkpoint {checkpoint_dir} does not fit this run ({reason}): it holds state of another "
                        "model or optimizer setup. Use a new --job.dump_folder for this run."
                    ) from e
                if i + 1 == len(candidates):
                    raise CheckpointError(
                        f"the checkpoint {checkpoint_dir} cannot be read ({reason}) and there is no "
                        "earlier complete one. Delete it to start the run afresh, or restore it."
                    ) from e
                logger.warning(
                    f"The checkpoint {checkpoint_dir} cannot be read ({reason}); falling back to "
                    f"the previous complete one, step-{candidates[i + 1]}. Delete the unreadable folder."
                )
        return False

    def _reapply_settings(self) -> None:
        """Put this launch's optimizer hyperparameters and learning-rate schedule back after a load
        (the loaded param groups and scheduler state carry the ones the checkpoint was written
        with); identical values when nothing changed, so an exact resume stays exact."""
        self._optimizers.reapply_configured_hyperparameters()
        for scheduler in self._lr_schedulers.schedulers:
            groups = scheduler.optimizer.param_groups
            scheduler.base_lrs = [group["lr"] for group in groups]  # the configured peak lr, just re-applied
            lrs = [base * fn(scheduler.last_epoch) for fn, base in zip(scheduler.lr_lambdas, scheduler.base_lrs)]
            for group, base, lr in zip(groups, scheduler.base_lrs, lrs):
                group["initial_lr"], group["lr"] = base, lr
            scheduler._last_lr = lrs


def _reason(error: BaseException) -> str:
    """``Type: last line`` of an error (DCP's text ends in the cause)."""
    lines = [line for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[-1].strip() if lines else ''}"
