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


class EvalWeightsCheckpointer:
    """Wraps ``checkpointer`` (a TorchTitan CheckpointManager) for ``optimizers``.

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
            ckpt.save(curr_step, last_step)
            ckpt.maybe_wait_for_staging()  # async staging must copy these weights, not y

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
