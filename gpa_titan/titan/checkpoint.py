"""Checkpoints that hold the evaluation weights.

``EvalWeightsCheckpointer`` wraps TorchTitan's CheckpointManager (same interface, same
DCP files). Around every save that will actually write, it switches the optimizers to
eval mode, so the model weights in every checkpoint and in the final model-only export
are the ones to evaluate and ship (x for GPA-AdamW, the outer weights for DiLoCo).
The optimizer state saved next to them (z, or the inner weights, plus the mode flag)
holds everything needed to continue exactly. After a load it switches back to train
mode, and re-anchors optimizers that have not stepped (a model-only load).

Every checkpoint folder also records the run's config (``run_identity``); a resume is
checked against it first, and a checkpoint that cannot be read is named and skipped for the
previous complete one.
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

from .cpu_collectives import all_ranks, cpu_group
from .monitor import DivergenceError
from .run_identity import RunIdentityError, check_checkpoint, is_model_only, write_checkpoint_config


def all_parameters_finite(model_parts: list[torch.nn.Module]) -> bool:
    """Whether every rank's local parameter shards are finite (one host sync and one CPU
    collective: called only before a checkpoint is written)."""
    checks = [torch.isfinite(local(p)).all() for model in model_parts for p in model.parameters()]
    return all_ranks(bool(torch.stack(checks).all()) if checks else True)


def check_checkpoint_folder(folder: str) -> None:
    """Fail at start-up, not at the first save, when the checkpoint folder cannot be written."""
    try:
        os.makedirs(folder, exist_ok=True)
        probe = os.path.join(folder, f".write_test_{os.getpid()}")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        raise RunIdentityError(
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
    free = shutil.disk_usage(checkpointer.folder).free
    gib = 2**30
    if free < needed:
        raise RunIdentityError(
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
        run_config (dict): the run's recorded config (``run_identity.run_config``).
        allow_changes (bool): ``[job] allow_resume_changes``.
    """

    def __init__(self, checkpointer, optimizers, run_config: dict, allow_changes: bool = False) -> None:
        self._checkpointer = checkpointer
        self._optimizers = optimizers
        self.run_config = run_config
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
                    "lengthen [lr_scheduler] warmup_steps, and resume from that checkpoint in a new dump folder."
                )
            if torch.accelerator.is_available():
                torch.accelerator.synchronize()  # the swap's kernels finish before staging copies
            if not dist.is_initialized() or dist.get_rank() == 0:  # before DCP marks the folder complete
                model_only = last_step and ckpt.last_save_model_only
                write_checkpoint_config(ckpt._create_checkpoint_id(curr_step), self.run_config, model_only)
            ckpt.save(curr_step, last_step)
            ckpt.maybe_wait_for_staging()  # staging copies these weights before train() swaps back

    def force_save(self, curr_step: int) -> None:
        """A full checkpoint now, whatever the interval (used on preemption)."""
        ckpt = self._checkpointer
        if not ckpt.enable:
            return
        interval = ckpt.interval
        ckpt.interval = 1  # makes _should_save true for this step only
        try:
            self.save(curr_step, last_step=False)
            ckpt._async_wait()
        finally:
            ckpt.interval = interval

    def complete_steps(self) -> list[int]:
        """The steps of this run's complete checkpoints (their DCP metadata written), newest first."""
        folder = self._checkpointer.folder
        if not os.path.isdir(folder):
            return []
        steps = [int(name[5:]) for name in os.listdir(folder) if name.startswith("step-") and name[5:].isdigit()]
        return sorted((s for s in steps if os.path.isfile(os.path.join(folder, f"step-{s}", ".metadata"))),
                      reverse=True)

    def load(self, step: int = -1) -> bool:
        ckpt = self._checkpointer
        candidates = self.complete_steps() if ckpt.enable and step == -1 else []
        if candidates and is_model_only(ckpt._create_checkpoint_id(candidates[0])):
            logger.info(f"step-{candidates[0]} holds the final model weights only; resuming from the latest full one")
            candidates = [c for c in candidates if not is_model_only(ckpt._create_checkpoint_id(c))]
        for i, candidate in enumerate(candidates):
            checkpoint_dir = ckpt._create_checkpoint_id(candidate)
            self.resume_differences = check_checkpoint(checkpoint_dir, self.run_config, self.allow_changes)
            try:
                loaded = ckpt.load(candidate)
                break
            except (RunIdentityError, KeyboardInterrupt):
                raise
            except (Exception, CheckpointException) as e:  # unreadable (DCP raises a BaseException)
                lines = [line for line in str(e).splitlines() if line.strip()]
                reason = f"{type(e).__name__}: {lines[-1].strip() if lines else ''}"  # DCP's text ends in the cause
                if i + 1 == len(candidates):
                    raise RunIdentityError(
                        f"the checkpoint {checkpoint_dir} cannot be read ({reason}) and there is no "
                        "earlier complete one. Delete it to start the run afresh, or restore it."
                    ) from e
                logger.warning(
                    f"The checkpoint {checkpoint_dir} cannot be read ({reason}); falling back to "
                    f"the previous complete one, step-{candidates[i + 1]}. Delete the unreadable folder."
                )
        else:
            loaded = ckpt.load(step)
        self._optimizers.train()
        self._optimizers.restart_fresh_state()
        return loaded
