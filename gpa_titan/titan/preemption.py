"""Preemption: a signal asks for a checkpoint and a clean exit, and every rank agrees on the step.

Slurm sends the signal (``--signal=USR1@180``) to some or all ranks. Ranks must stop at the
same step, so the flag is all-reduced; to add no host-device synchronisation to training, the
flag is a CPU tensor reduced over a gloo group, and only at logging steps (``step == 1`` or
``step % [metrics] log_freq == 0``).
"""

from __future__ import annotations

import signal
from collections.abc import Callable

import torch.distributed as dist
from torchtitan.tools.logging import logger

from .cpu_collectives import any_rank, cpu_group


class PreemptedUnsaved(RuntimeError):
    """The run was preempted with checkpoints off: it stopped and nothing was saved."""


class PreemptionSignal:
    """Records the signal ``signame`` and decides, with all ranks, when to stop.

    Args:
        signame (str): the signal's name, e.g. ``"SIGUSR1"``.
        is_check_step (Callable[[int], bool]): the steps at which ranks agree (the trainer's
            ``metrics_processor.should_log``).
        saves (bool, default True): whether the run can save a checkpoint when it stops
            (``[checkpoint] enable``); only changes what the signal's log line says.
    """

    def __init__(self, signame: str, is_check_step: Callable[[int], bool], saves: bool = True) -> None:
        self.signame = signame
        self.requested = False
        self.is_check_step = is_check_step
        self.saves = saves
        if dist.is_initialized() and dist.get_world_size() > 1:
            cpu_group()  # created now, on every rank at once
        signal.signal(getattr(signal, signame), self._on_signal)

    def _on_signal(self, signum, frame) -> None:
        if self.saves:
            logger.warning(f"Received signal {signum}: checkpointing at the next logging step, then exiting")
        else:
            logger.warning(f"Received signal {signum}: stopping at the next logging step; checkpoints are off "
                           "([checkpoint] enable = false), so nothing will be saved")
        self.requested = True

    def agreed(self, step: int) -> bool:
        """Whether every rank stops after ``step`` (a collective at check steps, nothing otherwise)."""
        if step < 1 or not self.is_check_step(step):
            return False
        return any_rank(self.requested)
