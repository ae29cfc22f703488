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

import functools
from typing import Callable, Iterable, Sequence

import torch
from ._common import EvalModeOptimizer, check_adamw_args, check_implementation, check_range, local, locals_
from ._cpu_kernel import cpu_kernel


COEFFICIENTS = (
    "one_minus_beta1",
    "beta2",
    "one_minus_beta2",
    "inv_sqrt_bias_correction2",
    "eps",
    "mu_x",
    "y_z_coef",
    "y_u_coef",
    "lr_times_wd",
    "z_u_coef",
)


def gpa_adamw_update_(
    y: torch.Tensor,
    z: torch.Tensor,
    grad: torch.Tensor,
    exp_avg: torch.Tensor,
    exp_avg_sq: torch.Tensor,
    c: Sequence[float] | torch.Tensor,
) -> None:
    """One GPA-AdamW step on a single tensor, in place (y, z and the two moments).

    ``c`` holds the host-computed coefficients in the order of ``COEFFICIENTS`` (a list
    of floats, or one small tensor for the compiled kernel, so that a changing lr is a
    kernel argument rather than a reason to recompile). ``u = m / (sqrt(v)/sqrt(bc2) +
    eps)`` is AdamW's normalized first moment; lr, weight decay, bias correction 1 and
    mu_x, mu_y are folded into the coefficients (see ``gpa_coefficients``).
    """
    exp_avg.copy_(exp_avg + (grad - exp_avg) * c[0])
    exp_avg_sq.copy_(exp_avg_sq * c[1] + grad * grad * c[2])
    u = exp_avg / (exp_avg_sq.sqrt() * c[3] + c[4])
    y.copy_(y * c[5] + z * c[6] + u * c[7])  # uses z_t: before z moves
    z.copy_(z - z * c[8] + u * c[9])  # c[8] = lr*wd: no 1 - lr*wd rounding in float32


@functools.cache
def _compiled_update() -> Callable[..., None]:
    # dynamic=True: one compiled kernel serves every tensor size.
    return torch.compile(gpa_adamw_update_, dynamic=True, fullgraph=True)


def gpa_coefficients(
    lr: float, weight_decay: float, beta1: float, beta2: float, eps: float, mu_x: float, mu_y: float, step: int
) -> list[float]:
    """The host-side coefficients of ``gpa_adamw_update_`` for step number ``step`` (1-based)."""
    bias_correction1 = 1.0 - beta1**step
    bias_correction2 = 1.0 - beta2**step
    step_size = lr / bias_correction1
    delta_weight = 1.0 - mu_x * mu_y  # weight of (z_{t+1} - z_t) in y_{t+1}
    coefs = dict(
        one_minus_beta1=1.0 - beta1,
        beta2=beta2,
        one_minus_beta2=1.0 - beta2,
        inv_sqrt_bias_correction2=1.0 / bias_correction2**0.5,
        eps=eps,
        mu_x=mu_x,
        y_z_coef=(1.0 - mu_x) - delta_weight * lr * weight_decay,
        y_u_coef=-delta_weight * step_size,
        lr_times_wd=lr * weight_decay,
        z_u_coef=-step_size,
    )
    return [coefs[name] for name in COEFFICIENTS]


def _coefficient_tensor(values: list[float], like: torch.Tensor) -> torch.Tensor:
    """The coefficients on ``like``'s device without a host-device synchronisation."""
    dtype = torch.float64 if like.dtype == torch.float64 else torch.float32
    if like.device.type == "cpu":
        return torch.tensor(values, dtype=dtype)
    pinned = torch.tensor(values, dtype=dtype, pin_memory=True)
    return pinned.to(like.device, non_blocking=True)


class GPAAdamW(EvalModeOptimizer):
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
        mu_y (float, default 0.9): interpolation of y between x and z, in (0, 1].
        implementation (str, default "fused"): "fused" makes one pass over memory per
            tensor: a C++ kernel built on first use on CPU (needs a C++ compiler; see
            ``_cpu_kernel``), a ``torch.compile``d Triton kernel on GPUs; "foreach" uses
            ``torch._foreach_*`` multi-tensor ops; "for-loop" runs the per-tensor math
            eagerly. All three compute the same update.
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.95),
        eps: float = 1e-8,
        weight_decay: float = 0.1,
        mu_x: float = 0.9967,
        mu_y: float = 0.9,
        implementation: str = "fused",
    ) -> None:
        check_adamw_args(lr, betas, eps, weight_decay)
        self._check_mu(mu_x, mu_y)
        check_implementation(implementation)
        self.implementation = implementation
        self._views: dict[torch.Tensor, tuple[torch.Tensor, ...] | None] = {}
        defaults = dict(
            lr=lr,
            betas=tuple(betas),
            eps=eps,
            weight_decay=weight_decay,
            mu_x=mu_x,
            mu_y=mu_y,
            step=0,
            train_mode=True,
        )
        super().__init__(params, defaults)
        for group in self.param_groups:
            check_adamw_args(group["lr"], group["betas"], group["eps"], group["weight_decay"])
            self._check_mu(group["mu_x"], group["mu_y"])
        self._init_state()

    @staticmethod
    def _check_mu(mu_x: float, mu_y: float) -> None:
        check_range("mu_x", mu_x, 0.0, 1.0, high_inclusive=False)
        check_range("mu_y", mu_y, 0.0, 1.0)
        if mu_y == 0.0:
            raise ValueError(
                "mu_y=0 is not supported: GPAAdamW stores y and z and recovers "
                "x = y/mu_y + (1 - 1/mu_y) z, which needs mu_y > 0. Use mu_y in (0, 1] "
                "(the paper uses 0.8 or 0.9)."
            )

    def _init_state(self) -> None:
        with torch.no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    state = self.state[p]
                    if "z" not in state:
                        state["z"] = p.detach().clone()
                        state["exp_avg"] = torch.zeros_like(p)
                        state["exp_avg_sq"] = torch.zeros_like(p)

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        self._views.clear()  # the state tensors were replaced

    # ------------------------------------------------------------------ modes
    eval_weights = "x"

    def _to_eval(self, group: dict) -> None:  # x = y + (1 - 1/mu_y) (z - y)
        params = locals_(group["params"])
        if params:
            torch._foreach_lerp_(params, locals_(self.state[p]["z"] for p in group["params"]), 1.0 - 1.0 / group["mu_y"])

    def _to_train(self, group: dict) -> None:  # y = x + (1 - mu_y) (z - x)
        params = locals_(group["params"])
        if params:
            torch._foreach_lerp_(params, locals_(self.state[p]["z"] for p in group["params"]), 1.0 - group["mu_y"])

    @torch.no_grad()
    def reset_state_from_params(self) -> None:
        """Restart the averaging at the current weights: x = y = z = params, moments zero."""
        self.train()
        for group in self.param_groups:
            group["step"] = 0
            for p in group["params"]:
                state = self.state[p]
                state["z"].copy_(p)
                state["exp_avg"].zero_()
                state["exp_avg_sq"].zero_()

    # ------------------------------------------------------------------ step
    def _coefficients(self, group: dict) -> list[float]:
        beta1, beta2 = group["betas"]
        return gpa_coefficients(
            group["lr"], group["weight_decay"], beta1, beta2, group["eps"], group["mu_x"], group["mu_y"], group["step"]
        )

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """Take one GPA-AdamW step from the gradients in ``p.grad`` (taken at y)."""
        loss = self._begin_step(closure)
        for group in self.param_groups:
            params = self._params_with_grad(group)
            if not params:
                continue
            group["step"] += 1
            coefs = self._coefficients(group)
            if self.implementation == "foreach":
                states = [self.state[p] for p in params]
                lists = [params, [s["z"] for s in states], [p.grad for p in params]]
                lists += [[s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states]]
                self._foreach_update([locals_(ts) for ts in lists], coefs)
            else:
                self._per_tensor_update(params, coefs)
        return loss

    def _flat_views(self, p: torch.Tensor) -> tuple[torch.Tensor, ...] | None:
        """1-D views of (y, z, exp_avg, exp_avg_sq) for the compiled kernel, cached per
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

    def _per_tensor_update(self, params: list[torch.Tensor], coefs: list[float]) -> None:
        fused = self.implementation == "fused"
        cpu_lists: dict[torch.dtype, list[list[torch.Tensor]]] = {}
        coef_tensors: dict[tuple, torch.Tensor] = {}
        for p in params:
            grad = local(p.grad)
            if grad.numel() == 0:
                continue  # an empty FSDP shard
            views = self._flat_views(p) if fused and grad.is_contiguous() else None
            if views is None or grad.dtype not in (torch.float32, torch.float64) and grad.device.type == "cpu":
                state = self.state[p]
                y, z, m, v = (local(t) for t in (p, state["z"], state["exp_avg"], state["exp_avg_sq"]))
                gpa_adamw_update_(y, z, grad, m, v, coefs)
            elif grad.device.type == "cpu":  # one C++ call per dtype, below
                y, z, m, v = views
                lists = cpu_lists.setdefault(grad.dtype, [[], [], [], [], []])
                for lst, t in zip(lists, (y, z, grad.view(-1), m, v)):
                    lst.append(t)
            else:  # accelerators: the torch.compile'd kernel (Triton on CUDA)
                key = (grad.device, grad.dtype)
                if key not in coef_tensors:
                    coef_tensors[key] = _coefficient_tensor(coefs, grad)
                y, z, m, v = views
                _compiled_update()(y, z, grad.view(-1), m, v, coef_tensors[key])
        for lists in cpu_lists.values():
            cpu_kernel().gpa_adamw_step(*lists, coefs)

    @staticmethod
    def _foreach_update(lists: list[list[torch.Tensor]], c: list[float]) -> None:
        ys, zs, grads, exp_avgs, exp_avg_sqs = lists
        torch._foreach_lerp_(exp_avgs, grads, c[0])
        torch._foreach_mul_(exp_avg_sqs, c[1])
        torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=c[2])
        u = torch._foreach_sqrt(exp_avg_sqs)  # the one temporary list: becomes u in place
        torch._foreach_mul_(u, c[3])
        torch._foreach_add_(u, c[4])
        torch._foreach_reciprocal_(u)
        torch._foreach_mul_(u, exp_avgs)
        torch._foreach_mul_(ys, c[5])
        torch._foreach_add_(ys, zs, alpha=c[6])
        torch._foreach_add_(ys, u, alpha=c[7])
        torch._foreach_add_(zs, zs, alpha=-c[8])
        torch._foreach_add_(zs, u, alpha=c[9])
