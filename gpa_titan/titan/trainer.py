"""TorchTitan's Trainer with validation and checkpoints at the evaluation weights."""

from __future__ import annotations

import os
import time

import torch
from torchtitan.protocols.model_converter import build_model_converters
from torchtitan.tools.logging import logger
from torchtitan.train import Trainer

from gpa_titan.runs import RUN_INFO, is_model_only

from .checkpoint import EvalWeightsCheckpointer, check_checkpoint_folder, check_checkpoint_space
from .cpu_compat import apply_cpu_compat
from .job_config import validate_job_config
from .monitor import DivergenceError, TrainingMonitor, format_duration
from .preemption import PreemptedUnsaved, PreemptionSignal
from .run_identity import DumpFolderLock, check_folder, run_config
from .run_info import write_run_info
from .wandb_offline import configure_wandb


class GPATrainer(Trainer):
    """``torchtitan.train.Trainer`` for the ``gpa_llama3`` spec.

    Adds: start-up validation of this repo's settings; the CPU/gloo compatibility
    layer when no accelerator is present; checkpoints and validation at the
    optimizers' evaluation weights (and float8 scales recomputed after every weight swap);
    a divergence guard and ``step N/total`` progress with an ETA at logging steps; a final
    validation of the final model whatever the validation interval, and a summary;
    ``run_info.json`` in the dump folder; and, on the signal named by
    ``GPA_PREEMPT_SIGNAL`` (default SIGUSR1, which the Slurm script asks for before the
    time limit), a full checkpoint at the next logging step and a clean exit so that the
    requeued job resumes from it (with checkpoints off it stops without one, says so, and exits
    with code 4, which the Slurm script does not requeue).

    Args:
        job_config: the parsed JobConfig (with ``gpa_titan.titan.job_config`` merged in).
    """

    def __init__(self, job_config) -> None:
        validate_job_config(job_config)
        apply_cpu_compat()
        dump = job_config.job.dump_folder
        is_rank0 = int(os.environ.get("RANK", "0")) == 0
        # one run per dump folder: checked before TorchTitan writes anything there
        self._lock = DumpFolderLock(dump) if is_rank0 else None
        self.run_config = run_config(job_config, int(os.environ.get("WORLD_SIZE", "1")))
        folder_differences = check_folder(dump, self.run_config, job_config.job.allow_resume_changes)
        if job_config.checkpoint.enable and is_rank0:
            check_checkpoint_folder(os.path.join(dump, job_config.checkpoint.folder))
        configure_wandb(job_config)
        self._first_step: int | None = None
        self._start_time = time.perf_counter()
        super().__init__(job_config)
        self.checkpointer = EvalWeightsCheckpointer(
            self.checkpointer, self.optimizers, self.lr_schedulers, self.run_config, dump,
            job_config.job.allow_resume_changes,
        )
        if job_config.model.converters:  # e.g. float8: scales must follow the weights a swap puts in place
            converters = build_model_converters(job_config, self.parallel_dims)
            self.optimizers.swap_hooks.append(lambda: converters.post_optimizer_hook(self.model_parts))
        if job_config.validation.enable:
            self.validator.optimizers = self.optimizers
            self.validator.device = self.device
        self.monitor = TrainingMonitor(self.metrics_processor, job_config.training.steps)
        signame = os.environ.get("GPA_PREEMPT_SIGNAL", "SIGUSR1")
        self.preemption = PreemptionSignal(signame, self.metrics_processor.should_log, job_config.checkpoint.enable)
        for key, old, new in folder_differences:
            logger.warning(f"[job] allow_resume_changes: {key} changes from {old!r} to {new!r} in this launch")
        if is_rank0:
            path = write_run_info(dump, self.run_config, folder_differences)
            logger.info(f"Run description written to {path}")
        if job_config.checkpoint.enable:
            check_checkpoint_space(self.checkpointer, self.model_parts, self.optimizers)

    def should_continue_training(self) -> bool:
        stop_after = self.job_config.job.stop_after_steps
        if self._first_step is None:
            self._first_step = self.step  # the step this run started from (after a resume)
        if stop_after > 0 and self.step >= self._first_step + stop_after and self.step < self.job_config.training.steps:
            if self.checkpointer.force_save(self.step):
                logger.info(f"[job] stop_after_steps = {stop_after}: stopped at step {self.step} with a checkpoint; "
                            "the same command continues the run from it")
            else:  # refused at start-up (start_checks); kept true should that check ever be bypassed
                logger.warning(f"[job] stop_after_steps = {stop_after}: stopped at step {self.step}; checkpoints are "
                               "off, so nothing was saved")
            return False
        if self.preemption.agreed(self.step):
            if self.checkpointer.force_save(self.step):
                if torch.distributed.get_rank() == 0:  # tells slurm/train.sbatch to requeue
                    with open(os.path.join(self.job_config.job.dump_folder, "PREEMPTED"), "w") as f:
                        f.write(f"{self.step}\n")
                logger.warning(f"Preempted: saved a checkpoint at step {self.step}; exiting for requeue")
            else:
                self._preempted_unsaved = self.step
                if torch.distributed.get_rank() == 0:  # tells slurm/train.sbatch not to requeue (torchrun exits 1)
                    with open(os.path.join(self.job_config.job.dump_folder, "PREEMPTED_UNSAVED"), "w") as f:
                        f.write(f"{self.step}\n")
            return False
        return super().should_continue_training()

    def train(self) -> None:
        cfg = self.job_config
        self._preempted_unsaved: int | None = None
        if cfg.checkpoint.enable:
            latest = self.checkpointer.prepare_resume(cfg.training.steps)
            if latest == cfg.training.steps:
                self._log_complete(latest)
                return
        try:
            super().train()
        except DivergenceError as e:
            raise DivergenceError(f"{e} {self._retry_hint()}") from None
        finished = self.step == self.job_config.training.steps
        if finished and self.job_config.validation.enable and self.validator.last_step != self.step:
            self.validator.validate(self.model_parts, self.step)  # the final model, whatever the interval
        if torch.distributed.get_rank() == 0:
            self._log_summary(finished)
        if self._preempted_unsaved is not None:
            raise PreemptedUnsaved(
                f"preempted (signal {self.preemption.signame}) at step {self._preempted_unsaved}: [checkpoint] enable "
                "= false, so nothing was saved and this run cannot be resumed (exit code 4; slurm/train.sbatch does "
                "not requeue it). Add --checkpoint.enable to runs that may be preempted."
            )

    def _retry_hint(self) -> str:
        """What to run after a divergence: the last finite checkpoint, a lower lr, a new folder."""
        cfg = self.job_config
        lower = f"{cfg.optimizer.lr / 10:g}"
        full = self.checkpointer.full_steps() if cfg.checkpoint.enable else []
        if not full:
            return (f"No checkpoint of this run was written: rerun it with a lower learning rate, e.g. add "
                    f"--optimizer.lr {lower} --job.dump_folder {cfg.job.dump_folder}-retry to this command.")
        path = self.checkpointer._create_checkpoint_id(full[0])
        return (f"To continue from its last finite checkpoint with a lower learning rate, add --job.dump_folder "
                f"{cfg.job.dump_folder}-retry --checkpoint.initial_load_path {path} "
                f"--checkpoint.no-initial_load_model_only --optimizer.lr {lower} to this command.")

    def _log_complete(self, step: int) -> None:
        cfg = self.job_config
        folder = os.path.join(cfg.job.dump_folder, cfg.checkpoint.folder)
        final = os.path.join(folder, f"step-{step}")
        kept = (f"its final export step-{step} is then kept as final-model-{step}" if is_model_only(final)
                else f"it goes on from step-{step}")
        logger.info(
            f"This run is complete: {folder} holds step-{step} of [training] steps = {cfg.training.steps}; nothing "
            "to do. To train longer, either start a new run from its final weights (fresh optimizer state and "
            f"schedule): add --job.dump_folder {cfg.job.dump_folder}-continued --checkpoint.initial_load_path {final} "
            "--checkpoint.initial_load_model_only to this command; or continue this run from its latest full "
            f"checkpoint with the schedule stretched to a new length N > {cfg.training.steps} ({kept}): add "
            "--training.steps N --job.allow_resume_changes to this command."
        )

    def _log_summary(self, finished: bool) -> None:
        cfg, dims = self.job_config, self.parallel_dims
        first = self._first_step or 0
        global_batch = cfg.training.global_batch_size
        if global_batch <= 0:
            global_batch = cfg.training.local_batch_size * dims.dp_replicate * dims.dp_shard
        tokens = (self.step - first) * global_batch * cfg.training.seq_len
        dump = cfg.job.dump_folder
        lines = [
            f"{'Run complete' if finished else 'Run stopped'} at step {self.step}/{cfg.training.steps} "
            f"(this launch: steps {first + 1}-{self.step}, {tokens:,} tokens, "
            f"{format_duration(time.perf_counter() - self._start_time)})"
        ]
        if cfg.validation.enable and self.validator.history:
            last_step, last = max(self.validator.history.items())
            best_step, best = min(self.validator.history.items(), key=lambda kv: kv[1])
            lines.append(f"validation loss: final {last:.4f} (step {last_step}), best {best:.4f} (step {best_step})")
        if cfg.checkpoint.enable:
            lines.append(f"checkpoints: {os.path.join(dump, cfg.checkpoint.folder)}")
        if cfg.metrics.enable_tensorboard:
            lines.append(f"TensorBoard: {os.path.join(dump, cfg.metrics.save_tb_folder)}")
        lines.append(f"run description: {os.path.join(dump, RUN_INFO)}")
        lines.append(f"plot: python scripts/plot_runs.py {dump} --out {os.path.join(dump, 'figures')}")
        logger.info("\n  ".join(lines))
