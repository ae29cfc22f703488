"""Checkpoints that hold the evaluation weights.

``EvalWeightsCheckpointer`` wraps TorchTitan's CheckpointManager (same interface, same
DCP files). Around every save that will actually write, it switches the optimizers to
eval mode, so the model weights in every checkpoint and in the final model-only export
are the ones to evaluate and ship (x for GPA-AdamW, the outer weights for DiLoCo).
The optimizer state saved next to them (z, or the inner weights, plus the mode flag)
holds everything needed to continue exactly. After a load it switches back to train
mode, and re-anchors optimizers that have not stepped (a model-only load).
"""

from __future__ import annotations

from typing import Any

import torch

from gpa_titan.optim.base import local

from .cpu_collectives import all_ranks
from .monitor import DivergenceError


def all_parameters_finite(model_parts: list[torch.nn.Module]) -> bool:
    """Whether every rank's local parameter shards are finite (one host sync and one CPU
    collective: called only before a checkpoint is written)."""
    checks = [torch.isfinite(local(p)).all() for model in model_parts for p in model.parameters()]
    return all_ranks(bool(torch.stack(checks).all()) if checks else True)


class EvalWeightsCheckpointer:
    """Wraps ``checkpointer`` (a TorchTitan CheckpointManager) for ``optimizers``.

    Before every save that will write, the optimizers switch to eval mode; on an accelerator
    the device is synchronised after that swap so that async staging (which copies on a side
    stream) sees the evaluation weights; and a model with a non-finite weight is never
    written (``DivergenceError``), so ``keep_latest_k`` cannot rotate out the last finite one.

    Args:
        checkpointer: the trainer's CheckpointManager; every other attribute is forwarded.
        optimizers: the EvalWeightsOptimizersContainer being checkpointed.
    """

    def __init__(self, checkpointer, optimizers) -> None:
        self._checkpointer = checkpointer
        self._optimizers = optimizers

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

    def load(self, step: int = -1) -> bool:
        loaded = self._checkpointer.load(step)
        self._optimizers.train()
        self._optimizers.restart_fresh_state()
        return loaded
