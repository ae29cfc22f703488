"""Pieces shared by the optimizers: argument checks, train/eval bookkeeping, DTensor access."""

from __future__ import annotations

import math
from typing import Iterable

import torch
from torch.distributed.tensor import DTensor

IMPLEMENTATIONS = ("fused", "foreach", "for-loop")


def check_range(
    name: str,
    value: float,
    low: float,
    high: float,
    *,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> None:
    """Raise a ValueError naming ``name`` and its allowed range unless ``value`` lies in it."""
    if isinstance(value, torch.Tensor):
        raise ValueError(f"{name} must be a Python number, got a Tensor")
    ok = not math.isnan(value)
    ok = ok and (value >= low if low_inclusive else value > low)
    ok = ok and (value <= high if high_inclusive else value < high)
    if not ok:
        lb = "[" if low_inclusive else "("
        hb = "]" if high_inclusive else ")"
        raise ValueError(f"{name}={value!r} is out of range: it must lie in {lb}{low}, {high}{hb}")


def check_adamw_args(lr: float, betas: tuple[float, float], eps: float, weight_decay: float) -> None:
    """Validate AdamW's hyperparameters, naming the offending argument."""
    check_range("lr", lr, 0.0, math.inf, high_inclusive=False)
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    check_range("betas[0]", betas[0], 0.0, 1.0, high_inclusive=False)
    check_range("betas[1]", betas[1], 0.0, 1.0, high_inclusive=False)
    check_range("eps", eps, 0.0, math.inf, low_inclusive=False, high_inclusive=False)
    check_range("weight_decay", weight_decay, 0.0, math.inf, high_inclusive=False)


def check_implementation(implementation: str) -> None:
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(
            f"implementation={implementation!r} is not one of {list(IMPLEMENTATIONS)}"
        )


def local(t: torch.Tensor) -> torch.Tensor:
    """The tensor this rank owns: the local shard of a DTensor, the tensor itself otherwise.

    All of the optimizers' math is elementwise and every state tensor has the same
    placement as its parameter, so it can run on local shards without communication.
    """
    return t.to_local() if isinstance(t, DTensor) else t


def locals_(ts: Iterable[torch.Tensor]) -> list[torch.Tensor]:
    return [local(t) for t in ts]


def group_is_training(group: dict) -> bool:
    return bool(group["train_mode"])


class EvalModeOptimizer(torch.optim.Optimizer):
    """Shared protocol of optimizers whose evaluation weights differ from their training ones.

    Subclasses implement ``_to_eval(group)`` / ``_to_train(group)`` (move one group's
    parameters between the two weight sets, in place) and ``_init_state()`` (create all
    state eagerly). This class keeps the per-group ``train_mode`` flag (saved with
    ``state_dict()``), makes ``train()``/``eval()`` idempotent, and refuses ``step()`` in
    eval mode.
    """

    eval_weights = "the evaluation weights"  # for error messages

    @property
    def training(self) -> bool:
        return all(group_is_training(g) for g in self.param_groups)

    def eval(self) -> None:
        """Put the evaluation weights into the parameters. Idempotent."""
        with torch.no_grad():
            for group in self.param_groups:
                if group_is_training(group):
                    self._to_eval(group)
                    group["train_mode"] = False

    def train(self) -> None:
        """Put the training weights back into the parameters. Idempotent."""
        with torch.no_grad():
            for group in self.param_groups:
                if not group_is_training(group):
                    self._to_train(group)
                    group["train_mode"] = True

    def add_param_group(self, param_group: dict) -> None:
        super().add_param_group(param_group)
        if hasattr(self, "implementation"):  # after __init__: new groups get their state now
            self._init_state()

    def _begin_step(self, closure):
        """Check the mode and evaluate the closure; returns its loss (or None)."""
        if not self.training:
            raise RuntimeError(
                f"{type(self).__name__}.step() was called in eval mode (the parameters hold "
                f"{self.eval_weights}). Call optimizer.train() before the next training step."
            )
        if closure is None:
            return None
        with torch.enable_grad():
            return closure()

    def _params_with_grad(self, group: dict) -> list[torch.Tensor]:
        params = [p for p in group["params"] if p.grad is not None]
        if any(p.grad.is_sparse for p in params):
            raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
        return params
