"""TorchTitan's Trainer with validation and checkpoints at the evaluation weights."""

from __future__ import annotations

import os
import signal

import torch
from torchtitan.tools.logging import logger
from torchtitan.train import Trainer

from .checkpoint import EvalWeightsCheckpointer
from .cpu_compat import apply_cpu_compat
from .job_config import validate_job_config
from .run_info import write_run_info
from .wandb_offline import configure_wandb


class GPATrainer(Trainer):
    """``torchtitan.train.Trainer`` for the ``gpa_llama3`` spec.

    Adds: start-up validation of this repo's settings; the CPU/gloo compatibility
    layer when no accelerator is present; checkpoints and validation at the
    optimizers' evaluation weights; ``run_info.json`` in the dump folder; and, on the
    signal named by ``GPA_PREEMPT_SIGNAL`` (default SIGUSR1, which the Slurm script asks
    for before the time limit), a full checkpoint at the next step boundary and a
    clean exit so that the requeued job resumes from it.

    Args:
        job_config: the parsed JobConfig (with ``gpa_titan.titan.job_config`` merged in).
    """

    def __init__(self, job_config) -> None:
        validate_job_config(job_config)
        apply_cpu_compat()
        configure_wandb(job_config)
        self.preempted = False
        self._first_step = None
        super().__init__(job_config)
        self.checkpointer = EvalWeightsCheckpointer(self.checkpointer, self.optimizers)
        if job_config.validation.enable:
            self.validator.optimizers = self.optimizers
        if torch.distributed.get_rank() == 0:
            path = write_run_info(job_config, job_config.job.dump_folder)
            logger.info(f"Run description written to {path}")
        signame = os.environ.get("GPA_PREEMPT_SIGNAL", "SIGUSR1")
        signal.signal(getattr(signal, signame), self._on_preempt)

    def _on_preempt(self, signum, frame) -> None:
        logger.warning(f"Received signal {signum}: checkpointing at the end of this step, then exiting")
        self.preempted = True

    def should_continue_training(self) -> bool:
        stop_after = self.job_config.job.stop_after_steps
        if self._first_step is None:
            self._first_step = self.step  # the step this run started from (after a resume)
        if stop_after > 0 and self.step >= self._first_step + stop_after and self.step < self.job_config.training.steps:
            self.checkpointer.force_save(self.step)
            logger.info(f"[job] stop_after_steps = {stop_after}: stopping at step {self.step}")
            return False
        if self._preemption_agreed():
            self.checkpointer.force_save(self.step)
            if torch.distributed.get_rank() == 0:  # tells slurm/train.sbatch to requeue
                with open(os.path.join(self.job_config.job.dump_folder, "PREEMPTED"), "w") as f:
                    f.write(f"{self.step}\n")
            logger.warning(f"Preempted: saved a checkpoint at step {self.step}; exiting for requeue")
            return False
        return super().should_continue_training()

    def _preemption_agreed(self) -> bool:
        # every rank must stop at the same step, even if only some received the signal
        flag = torch.tensor([1.0 if self.preempted else 0.0], device=self.device)
        if torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1:
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return bool(flag.item()) and self.step > 0
