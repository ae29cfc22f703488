"""Single-worker DiLoCo with AdamW inner steps and a Nesterov outer step.

Algorithm 2 / eq. (6) of arXiv 2512.17131 with one worker: H inner AdamW steps move
the parameters (the inner weights); then the pseudo-gradient p = outer - inner drives
an outer SGD step with Nesterov momentum in PyTorch's convention

    b     <- mu * b + p
    outer <- outer - outer_lr * (p + mu * b)

and the inner weights restart from the new outer weights. AdamW's moments and step
count carry across outer steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch.optim.adamw import adamw

from .base import EvalModeOptimizer, local, local_grad
from .hyperparameters import check_adamw, check_integer, check_number


class DiLoCoAdamW(EvalModeOptimizer):
    """Single-worker DiLoCo-AdamW (Algorithm 2 of arXiv 2512.17131).

    In train mode the parameters hold the inner weights; ``eval()`` swaps the outer
    weights (the model to validate, checkpoint and ship) into the parameters, and
    ``train()`` swaps the inner weights back. The optimizer starts in train mode and
    ``step()`` in eval mode raises. Beyond AdamW's state it keeps exactly two buffers per
    parameter: ``outer`` (the weights that are not in the parameters: the outer weights
    in train mode, the inner weights in eval mode) and ``outer_momentum``. The position
    inside the H-step period is ``group["step"] % inner_steps`` and is saved with
    ``state_dict()``, so a resume in the middle of a period is exact.

    ``inner_steps=1, outer_lr=1, outer_momentum=0`` is exactly AdamW.

    Args:
        params: iterable of parameters or of param-group dicts.
        lr (float, default 1e-3): inner AdamW learning rate (a scheduler may rewrite it).
        betas (tuple[float, float], default (0.9, 0.95)): AdamW's moment decay rates.
        eps (float, default 1e-8): AdamW's denominator epsilon.
        weight_decay (float, default 0.1): AdamW's decoupled weight decay.
        inner_steps (int, default 32): H, the inner steps between outer steps; the paper's
            H = 32. The CPU tuning study (1,000 steps, ``docs/results/tuned.json``) chose H = 1
            with outer lr 1 and momentum 0.7, i.e. no local steps: a small-scale answer, not a
            default for long runs, so the defaults stay the paper's.
        outer_lr (float, default 0.75): outer (Nesterov SGD) learning rate.
        outer_momentum (float, default 0.9): outer Nesterov momentum mu, in [0, 1).
        implementation (str, default "fused"): the inner AdamW kernel: "fused"
            (``torch.optim.AdamW(fused=True)``'s kernel), "foreach" or "for-loop".
    """

    HYPERPARAMETERS = ("lr", "betas", "eps", "weight_decay", "inner_steps", "outer_lr", "outer_momentum")

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.95),
        eps: float = 1e-8,
        weight_decay: float = 0.1,
        inner_steps: int = 32,
        outer_lr: float = 0.75,
        outer_momentum: float = 0.9,
        implementation: str = "fused",
    ) -> None:
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, inner_steps=inner_steps,
                        outer_lr=outer_lr, outer_momentum=outer_momentum)
        super().__init__(params, defaults, implementation)

    @staticmethod
    def check_hyperparameters(lr, betas, eps, weight_decay, inner_steps, outer_lr, outer_momentum) -> None:
        check_adamw(lr, betas, eps, weight_decay)
        check_integer("inner_steps", inner_steps, 1)
        check_number("outer_lr", outer_lr, 0.0, math.inf, low_inclusive=False, high_inclusive=False)
        check_number("outer_momentum", outer_momentum, 0.0, 1.0, high_inclusive=False)

    def _init_group(self, group: dict) -> None:
        # torch's fused AdamW reads the step count on the device
        for p in group["params"]:
            step_device = p.device if self.implementation == "fused" else "cpu"
            self.state[p] = dict(
                outer=p.detach().clone(),
                outer_momentum=torch.zeros_like(p),
                exp_avg=torch.zeros_like(p),
                exp_avg_sq=torch.zeros_like(p),
                step=torch.zeros((), dtype=torch.float32, device=step_device),
            )

    # ------------------------------------------------------------------ modes
    eval_weights = "the outer weights"

    def _swap(self, group: dict) -> None:
        for p in group["params"]:
            p_local, other = local(p), local(self.state[p]["outer"])
            tmp = p_local.clone()
            p_local.copy_(other)
            other.copy_(tmp)

    _to_eval = _swap
    _to_train = _swap

    # ------------------------------------------------------------------ step
    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """One inner AdamW step; every ``inner_steps``-th call also takes the outer step."""
        loss = self._begin_step(closure)
        for group in self.param_groups:
            params = self._params_with_grad(group)
            if not params:
                continue
            states = [self.state[p] for p in params]
            beta1, beta2 = group["betas"]
            adamw(
                [local(p) for p in params],
                [local_grad(p) for p in params],
                [local(s["exp_avg"]) for s in states],
                [local(s["exp_avg_sq"]) for s in states],
                [],
                [s["step"] for s in states],
                foreach=self.implementation == "foreach",
                fused=self.implementation == "fused",
                amsgrad=False,
                beta1=beta1,
                beta2=beta2,
                lr=group["lr"],
                weight_decay=group["weight_decay"],
                eps=group["eps"],
                maximize=False,
            )
            group["step"] += 1
            if group["step"] % group["inner_steps"] == 0:
                self._outer_step(group, params)
        return loss

    def _outer_step(self, group: dict, params: list[torch.Tensor]) -> None:
        mu, outer_lr = group["outer_momentum"], group["outer_lr"]
        for p in params:  # one tensor at a time: the temporary stays one tensor large
            state = self.state[p]
            inner, outer, momentum = local(p), local(state["outer"]), local(state["outer_momentum"])
            pseudo_grad = outer - inner
            momentum.mul_(mu).add_(pseudo_grad)
            pseudo_grad.add_(momentum, alpha=mu)  # Nesterov: p + mu * b
            outer.add_(pseudo_grad, alpha=-outer_lr)
            inner.copy_(outer)
