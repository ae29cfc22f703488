"""Validation at the evaluation weights, on a fixed set of batches."""

from __future__ import annotations

import contextlib
import math

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.distributed.tensor import DTensor
from torchtitan.components.loss import IGNORE_INDEX
from torchtitan.components.validate import BaseValidator

from .dataloader import build_validation_batches


class FixedSetValidator(BaseValidator):
    """Evaluates the model on the same tokens every time, at the evaluation weights.

    The batches come from ``build_validation_batches`` once, at start-up: identical at
    every evaluation, for every optimizer and after a resume, and every rank runs the
    same number of batches (no ``steps = -1`` reading to the end, no hang). Before the
    forward passes the optimizers' ``eval()`` swaps the evaluation weights in (x for GPA,
    the outer weights for DiLoCo) and ``train()`` swaps back afterwards. Logs
    ``validation_metrics/loss`` and ``validation_metrics/perplexity``, and keeps every
    result in ``history`` (step -> loss). Inputs go to the trainer's device (``device``, set
    by the trainer; correct with CPU offload, where parameters live on the CPU), and a loss
    that is a DTensor (tensor parallelism with loss parallel) is reduced to a plain tensor.

    Args: those of TorchTitan's ``build_validator_fn`` (see ``build_validator``).
    """

    def __init__(self, job_config, dp_world_size, dp_rank, tokenizer, parallel_dims, loss_fn,
                 validation_context, maybe_enable_amp, metrics_processor, pp_schedule=None,
                 pp_has_first_stage=None, pp_has_last_stage=None):
        super().__init__(job_config)
        if parallel_dims.pp_enabled or parallel_dims.cp_enabled:
            raise NotImplementedError("gpa_titan's validator supports FSDP/HSDP/DDP/TP, not PP or CP")
        self.parallel_dims = parallel_dims
        self.loss_fn = loss_fn
        self.validation_context = validation_context
        self.maybe_enable_amp = maybe_enable_amp
        self.metrics_processor = metrics_processor
        self.batches = build_validation_batches(dp_world_size, dp_rank, tokenizer, job_config)
        self.optimizers = None  # the trainer sets its optimizers container here
        self.device: torch.device | None = None  # and its device here
        self.history: dict[int, float] = {}
        self.last_step: int | None = None

    @torch.no_grad()
    def evaluate(self, model_parts: list[nn.Module]) -> float:
        """Mean token loss over the fixed set (all ranks), at the weights the model holds now."""
        (model,) = model_parts
        device = self.device if self.device is not None else next(model.parameters()).device
        model.eval()
        sums, counts = [], []
        for inputs, labels in self.batches:
            inputs, labels = inputs.to(device), labels.to(device)
            with self.validation_context(), self.maybe_enable_amp:
                loss = self.loss_fn(model(inputs), labels).detach()
                sums.append((loss.full_tensor() if isinstance(loss, DTensor) else loss).float())
            counts.append((labels != IGNORE_INDEX).sum().float())
        model.train()
        totals = torch.stack([torch.stack(sums), torch.stack(counts)])
        if self.parallel_dims.dp_cp_enabled:
            dist.all_reduce(totals, group=self.parallel_dims.get_optional_mesh("loss").get_group())
        return (totals[0] / totals[1]).mean().item()

    def validate(self, model_parts: list[nn.Module], step: int) -> None:
        weights = self.optimizers.evaluation_weights() if self.optimizers is not None else contextlib.nullcontext()
        with weights:
            loss = self.evaluate(model_parts)
        self.history[step], self.last_step = loss, step
        self.metrics_processor.ntokens_since_last_log += sum(x.numel() for x, _ in self.batches)
        self.metrics_processor.log_validation(
            loss=loss, step=step, extra_metrics={"validation_metrics/perplexity": math.exp(min(loss, 50.0))}
        )


def build_validator(**kwargs) -> FixedSetValidator:
    """TrainSpec ``build_validator_fn``."""
    return FixedSetValidator(**kwargs)
