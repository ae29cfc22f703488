"""GPA-AdamW: Generalized Primal Averaging with AdamW as the base optimizer.

Algorithm 1 of "Smoothing DiLoCo with Primal Averaging for Faster Training of LLMs"
(arXiv 2512.17131) keeps three sequences:

    y_t     = mu_y * x_t + (1 - mu_y) * z_t          (gradients are taken here)
    z_{t+1} = (1 - lr_t * wd) * z_t + lr_t * d_t      (d_t: AdamW's bias-corrected direction at y_t)
    x_{t+1} = mu_x * x_t + (1 - mu_x) * z_{t+1}      (the model you evaluate and ship)

We store it as in Appendix C.2: the parameters hold y and one extra buffer holds z;
x = y / mu_y + (1 - 1/mu_y) * z is recovered on ``eval()``. Substituting x into the
recursions (this is where the paper's Algorithm 3 has sign typos) gives the update

    y_{t+1} = mu_x * y_t + (1 - mu_x) * z_t + (1 - mu_x * mu_y) * (z_{t+1} - z_t),

which needs only y_t, z_t and the AdamW direction, elementwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NamedTuple

import torch

from .base import EvalModeOptimizer, StoresYAndZ, is_plain_tensor, local, local_grad, locals_
from .cpu_kernel import cpu_kernel
from .hyperparameters import check_adamw, check_averaging
from .table4 import PAPER_MU_Y


class GPACoefficients(NamedTuple):
    """The host-computed scalars of one GPA-AdamW step (lr, weight decay, bias corrections,
    mu_x and mu_y folded in). ``u = m / (sqrt(v) * inv_sqrt_bias_correction2 + eps)`` is
    AdamW's normalised first moment; then

        y <- y * mu_x + z * y_from_z + u * y_from_u      (with z_t, before z moves)
        z <- z - z * lr_wd + u * z_from_u

    The kernels take them in this field order.
    """

    one_minus_beta1: float
    beta2: float
    one_minus_beta2: float
    inv_sqrt_bias_correction2: float
    eps: float
    mu_x: float
    y_from_z: float
    y_from_u: float
    lr_wd: float
    z_from_u: float

    @classmethod
    def for_step(
        cls, lr: float, weight_decay: float, beta1: float, beta2: float, eps: float, mu_x: float, mu_y: float, step: int
    ) -> GPACoefficients:
        """The coefficients of step number ``step`` (1-based)."""
        step_size = lr / (1.0 - beta1**step)
        delta_weight = 1.0 - mu_x * mu_y  # weight of (z_{t+1} - z_t) in y_{t+1}
        return cls(
            one_minus_beta1=1.0 - beta1,
            beta2=beta2,
            one_minus_beta2=1.0 - beta2,
            inv_sqrt_bias_correction2=1.0 / (1.0 - beta2**step) ** 0.5,
            eps=eps,
            mu_x=mu_x,
            y_from_z=(1.0 - mu_x) - delta_weight * lr * weight_decay,
            y_from_u=-delta_weight * step_size,
            lr_wd=lr * weight_decay,  # z - z*lr_wd: no 1 - lr*wd rounding in float32
            z_from_u=-step_size,
        )


def gpa_adamw_update_(
    y: torch.Tensor, z: torch.Tensor, grad: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor,
    c: GPACoefficients,
) -> None:
    """One GPA-AdamW step on a single tensor, in place (y, z and the two moments)."""
    exp_avg.copy_(exp_avg + (grad - exp_avg) * c.one_minus_beta1)
    exp_avg_sq.copy_(exp_avg_sq * c.beta2 + grad * grad * c.one_minus_beta2)
    u = exp_avg / (exp_avg_sq.sqrt() * c.inv_sqrt_bias_correction2 + c.eps)
    y.copy_(y * c.mu_x + z * c.y_from_z + u * c.y_from_u)
    z.copy_(z - z * c.lr_wd + u * c.z_from_u)


class PrimalAveragingAdamW(StoresYAndZ):
    """What GPA-AdamW and Schedule-Free AdamW share: the Appendix C.2 storage (parameters
    hold y, one buffer z, plus AdamW's two moments), the update kernels and the y <-> x
    swaps. Subclasses say how a group's coefficients are computed (``_coefficients``) and
    where y sits between x and z (``_interpolation``, mu_y).

    Args:
        params: iterable of parameters or of param-group dicts.
        defaults (dict): the subclass's hyperparameter defaults.
        implementation (str): "fused" makes one pass over memory: on CPU a C++ kernel built
            on first use (float32/float64; needs a C++ compiler, see ``cpu_kernel``), on CUDA
            the hand-written Triton kernel of ``triton_kernel`` (float32/bfloat16), one launch
            per dtype; "triton" runs that Triton kernel on any device (on CPU tensors under
            ``TRITON_INTERPRET=1``, which is how CI tests the GPU kernel); "foreach" uses
            ``torch._foreach_*`` multi-tensor ops; "for-loop" runs the per-tensor math eagerly.
            Tensor subclasses (torchao's float8 weights), non-contiguous tensors and dtypes a
            kernel lacks take the foreach or eager path. All compute the same update.
    """

    IMPLEMENTATIONS = (*EvalModeOptimizer.IMPLEMENTATIONS, "triton")
    eval_weights = "x"

    def __init__(self, params: Iterable, defaults: dict, implementation: str) -> None:
        self._views: dict[torch.Tensor, tuple[torch.Tensor, ...] | None] = {}
        super().__init__(params, defaults, implementation)

    def _init_group(self, group: dict) -> None:
        for p in group["params"]:
            self.state[p] = dict(z=p.detach().clone(), exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
        self._views.clear()  # state tensors were replaced

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        self._views.clear()  # the state tensors were replaced

    def _coefficients(self, group: dict) -> GPACoefficients:
        raise NotImplementedError

    def _interpolation(self, group: dict) -> float:
        raise NotImplementedError

    # ------------------------------------------------------------------ step
    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """Take one step from the gradients in ``p.grad`` (taken at y)."""
        loss = self._begin_step(closure)
        for group in self.param_groups:
            params = self._params_with_grad(group)
            if not params:
                continue
            group["step"] += 1
            coefficients = self._coefficients(group)
            if self.implementation == "foreach":
                foreach, per_tensor = params, []
            else:  # tensor subclasses (e.g. torchao's float8 weights) take the foreach path
                foreach = [p for p in params if not is_plain_tensor(local(p))]
                per_tensor = [p for p in params if is_plain_tensor(local(p))]
            if foreach:
                states = [self.state[p] for p in foreach]
                self._foreach_update(
                    locals_(foreach), locals_(s["z"] for s in states), [local_grad(p) for p in foreach],
                    locals_(s["exp_avg"] for s in states), locals_(s["exp_avg_sq"] for s in states), coefficients,
                )
            if per_tensor:
                self._per_tensor_update(per_tensor, coefficients)
        return loss

    def _flat_views(self, p: torch.Tensor) -> tuple[torch.Tensor, ...] | None:
        """1-D views of (y, z, exp_avg, exp_avg_sq) for the fused kernels, cached per
        parameter (rebuilt if a storage moved); None when one is not contiguous."""
        cached = self._views.get(p)
        y = local(p)
        if cached is not None and cached[0].data_ptr() == y.data_ptr():
            return cached
        state = self.state[p]
        ts = [y] + [local(state[k]) for k in ("z", "exp_avg", "exp_avg_sq")]
        views = tuple(t.view(-1) for t in ts) if all(t.is_contiguous() for t in ts) else None
        self._views[p] = views
        return views

    def _kernel_for(self, grad: torch.Tensor) -> str | None:
        """Which hand-written kernel updates this tensor ("cpu", "triton"), or None (eager)."""
        dtype, device = grad.dtype, grad.device.type
        if self.implementation == "triton" or (self.implementation == "fused" and device == "cuda"):
            if dtype in (torch.float32, torch.bfloat16):
                return "triton"
            if self.implementation == "triton":
                raise ValueError(f"implementation='triton' supports float32 and bfloat16 tensors, not {dtype}")
            return None
        if self.implementation == "fused" and device == "cpu" and dtype in (torch.float32, torch.float64):
            return "cpu"
        return None

    def _per_tensor_update(self, params: list[torch.Tensor], c: GPACoefficients) -> None:
        """The update of plain tensors: grouped by (kernel, device, dtype) into one kernel call
        each; tensors no kernel takes are updated eagerly one by one."""
        groups: dict[tuple, list[list[torch.Tensor]]] = {}
        for p in params:
            grad = local_grad(p)
            if grad.numel() == 0:
                continue  # an empty FSDP shard
            kernel = self._kernel_for(grad) if self.implementation != "for-loop" else None
            views = self._flat_views(p) if kernel is not None and grad.is_contiguous() else None
            if views is None:
                state = self.state[p]
                y, z, m, v = (local(t) for t in (p, state["z"], state["exp_avg"], state["exp_avg_sq"]))
                gpa_adamw_update_(y, z, grad, m, v, c)
                continue
            y, z, m, v = views
            lists = groups.setdefault((kernel, grad.device, grad.dtype), [[], [], [], [], []])
            for lst, t in zip(lists, (y, z, grad.view(-1), m, v)):
                lst.append(t)
        for (kernel, _, _), lists in groups.items():
            if kernel == "cpu":
                cpu_kernel().gpa_adamw_step(*lists, list(c))
            else:
                from .triton_kernel import gpa_adamw_triton_step  # imports triton: only when used

                gpa_adamw_triton_step(*lists, c)

    @staticmethod
    def _foreach_update(ys, zs, grads, exp_avgs, exp_avg_sqs, c: GPACoefficients) -> None:
        torch._foreach_lerp_(exp_avgs, grads, c.one_minus_beta1)
        torch._foreach_mul_(exp_avg_sqs, c.beta2)
        torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=c.one_minus_beta2)
        u = torch._foreach_sqrt(exp_avg_sqs)  # the one temporary list: becomes u in place
        torch._foreach_mul_(u, c.inv_sqrt_bias_correction2)
        torch._foreach_add_(u, c.eps)
        torch._foreach_reciprocal_(u)
        torch._foreach_mul_(u, exp_avgs)
        torch._foreach_mul_(ys, c.mu_x)
        torch._foreach_add_(ys, zs, alpha=c.y_from_z)
        torch._foreach_add_(ys, u, alpha=c.y_from_u)
        torch._foreach_add_(zs, zs, alpha=-c.lr_wd)
        torch._foreach_add_(zs, u, alpha=c.z_from_u)


class GPAAdamW(PrimalAveragingAdamW):
    """GPA-AdamW (Algorithm 1 of arXiv 2512.17131), memory-efficient form (Appendix C.2).

    In train mode the parameters hold y, where gradients are evaluated; ``eval()``
    swaps x (the averaged model to validate, checkpoint and ship) into them and
    ``train()`` swaps y back, like Schedule-Free optimizers. The optimizer starts in
    train mode, and ``step()`` in eval mode raises. State per parameter: ``z``,
    ``exp_avg`` and ``exp_avg_sq`` (one buffer beyond AdamW), created eagerly so that
    checkpoint code never needs a warm-up step. The step count is a host integer in each
    param group (``group["step"]``), so a step makes no host-device synchronisation.

    ``mu_x = 0`` is exactly AdamW; ``mu_y = 1`` evaluates gradients at x (primal
    averaging at the averaged point). ``mu_y = 0`` is rejected: the memory-efficient
    form recovers x by dividing by mu_y, so it cannot represent it.

    Args:
        params: iterable of parameters or of param-group dicts.
        lr (float, default 1e-3): learning rate gamma; a scheduler may rewrite
            ``group["lr"]`` every step, and weight decay follows it (``z <- (1 - lr*wd) z``).
        betas (tuple[float, float], default (0.9, 0.95)): AdamW's moment decay rates.
        eps (float, default 1e-8): AdamW's denominator epsilon.
        weight_decay (float, default 0.1): decoupled weight decay lambda, applied to z.
        mu_x (float, default 0.9967): averaging rate of x in [0, 1); 0.9967 = 0.9**(1/32).
        mu_y (float, default 0.9): interpolation of y between x and z, in (0, 1]. 0.9 is the
            paper's value for its Llama runs (``table4.PAPER_MU_Y``: Section 3.1 keeps mu_y ~ mu
            = 0.9; its sweeps never went below 0.8 on Llama). The CPU tuning study chose 0.2 for
            a ~1M-parameter model over 1M tokens (``docs/results/tuned.json``; the demo config
            ``configs/debug_cpu.toml`` uses it): a finding at that scale, not a default. Sweep it
            for a new setting. Small values scale the reconstruction
            ``x = y/mu_y + (1 - 1/mu_y) z`` by 1/mu_y, so keep fp32 master weights.
        implementation (str, default "fused"): see ``PrimalAveragingAdamW``; all compute
            the same update.
    """

    HYPERPARAMETERS = ("lr", "betas", "eps", "weight_decay", "mu_x", "mu_y")

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.95),
        eps: float = 1e-8,
        weight_decay: float = 0.1,
        mu_x: float = 0.9967,
        mu_y: float = PAPER_MU_Y,
        implementation: str = "fused",
    ) -> None:
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, mu_x=mu_x, mu_y=mu_y)
        super().__init__(params, defaults, implementation)

    @staticmethod
    def check_hyperparameters(lr, betas, eps, weight_decay, mu_x, mu_y) -> None:
        check_adamw(lr, betas, eps, weight_decay)
        check_averaging(mu_x, mu_y)

    def _interpolation(self, group: dict) -> float:
        return group["mu_y"]

    def _coefficients(self, group: dict) -> GPACoefficients:
        beta1, beta2 = group["betas"]
        return GPACoefficients.for_step(
            group["lr"], group["weight_decay"], beta1, beta2, group["eps"], group["mu_x"], group["mu_y"], group["step"]
        )
