"""Plain float64 reference implementations, written as the paper writes the algorithms.

They keep every sequence explicitly (x, y, z for GPA; inner and outer weights for
DiLoCo), loop over tensors one at a time and favour readability over speed. The tests
run the fast optimizers against them step by step.
"""

from __future__ import annotations

import torch


def adamw_direction(
    grad: torch.Tensor, m: torch.Tensor, v: torch.Tensor, step: int, beta1: float, beta2: float, eps: float
) -> torch.Tensor:
    """Update the moments in place; return AdamW's bias-corrected descent direction d."""
    m.mul_(beta1).add_(grad, alpha=1 - beta1)
    v.mul_(beta2).add_(grad * grad, alpha=1 - beta2)
    m_hat = m / (1 - beta1**step)
    v_hat = v / (1 - beta2**step)
    return -m_hat / (v_hat.sqrt() + eps)


class ReferenceGPAAdamW:
    """Algorithm 1 with explicit x, y and z, in float64.

    Args:
        params: initial weights (x_0 = z_0 = the given tensors), copied to float64.
        betas (tuple[float, float], default (0.9, 0.95)), eps (float, default 1e-8),
        weight_decay (float, default 0.1), mu_x (float, default 0.9967),
        mu_y (float, default 0.9): as in ``GPAAdamW`` (its defaults). The lr is passed to ``step``.
    """

    def __init__(self, params, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1, mu_x=0.9967, mu_y=0.9):
        self.x = [p.detach().to(torch.float64).clone() for p in params]
        self.z = [t.clone() for t in self.x]
        self.m = [torch.zeros_like(t) for t in self.x]
        self.v = [torch.zeros_like(t) for t in self.x]
        self.betas, self.eps, self.wd = betas, eps, weight_decay
        self.mu_x, self.mu_y = mu_x, mu_y
        self.t = 0

    def y(self) -> list[torch.Tensor]:
        return [self.mu_y * x + (1 - self.mu_y) * z for x, z in zip(self.x, self.z)]

    def training_weights(self) -> list[torch.Tensor]:  # where gradients are taken
        return self.y()

    def evaluation_weights(self) -> list[torch.Tensor]:
        return self.x

    def step(self, grads: list[torch.Tensor], lr: float) -> None:
        """One step, given the gradients evaluated at ``self.y()``."""
        self.t += 1
        for i, g in enumerate(grads):
            d = adamw_direction(g.to(torch.float64), self.m[i], self.v[i], self.t, *self.betas, self.eps)
            self.z[i] = (1 - lr * self.wd) * self.z[i] + lr * d
            self.x[i] = self.mu_x * self.x[i] + (1 - self.mu_x) * self.z[i]


class ReferenceDiLoCoAdamW:
    """Single-worker DiLoCo (Algorithm 2) as two loops, in float64.

    Args:
        params: initial weights (inner = outer = the given tensors), copied to float64.
        betas, eps, weight_decay: the inner AdamW's (defaults (0.9, 0.95), 1e-8, 0.1).
        inner_steps (int, default 32), outer_lr (float, default 0.75),
        outer_momentum (float, default 0.9): as in ``DiLoCoAdamW``.
    """

    def __init__(
        self, params, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1, inner_steps=32, outer_lr=0.75, outer_momentum=0.9
    ):
        self.outer = [p.detach().to(torch.float64).clone() for p in params]
        self.inner = [t.clone() for t in self.outer]
        self.momentum = [torch.zeros_like(t) for t in self.outer]
        self.m = [torch.zeros_like(t) for t in self.outer]
        self.v = [torch.zeros_like(t) for t in self.outer]
        self.betas, self.eps, self.wd = betas, eps, weight_decay
        self.H, self.outer_lr, self.mu = inner_steps, outer_lr, outer_momentum
        self.t = 0

    def training_weights(self) -> list[torch.Tensor]:  # where gradients are taken
        return self.inner

    def evaluation_weights(self) -> list[torch.Tensor]:
        return self.outer

    def step(self, grads: list[torch.Tensor], lr: float) -> None:
        """One inner AdamW step at the inner weights; the outer step after every H."""
        self.t += 1
        for i, g in enumerate(grads):
            d = adamw_direction(g.to(torch.float64), self.m[i], self.v[i], self.t, *self.betas, self.eps)
            self.inner[i] = (1 - lr * self.wd) * self.inner[i] + lr * d
        if self.t % self.H == 0:
            for i in range(len(self.outer)):
                pseudo_grad = self.outer[i] - self.inner[i]
                self.momentum[i] = self.mu * self.momentum[i] + pseudo_grad
                self.outer[i] = self.outer[i] - self.outer_lr * (pseudo_grad + self.mu * self.momentum[i])
                self.inner[i] = self.outer[i].clone()


class ReferenceScheduleFreeAdamW:
    """Schedule-Free AdamW with explicit x, y and z, in float64 (weight decay on z).

    Args:
        params: initial weights (x_0 = z_0), copied to float64.
        betas (default (0.9, 0.95)), eps (default 1e-8), weight_decay (default 0.1),
        warmup_steps (default 0): as in ``ScheduleFreeAdamW``.
    """

    def __init__(self, params, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1, warmup_steps=0):
        self.x = [p.detach().to(torch.float64).clone() for p in params]
        self.z = [t.clone() for t in self.x]
        self.v = [torch.zeros_like(t) for t in self.x]
        self.betas, self.eps, self.wd, self.warmup = betas, eps, weight_decay, warmup_steps
        self.t, self.lr_max, self.weight_sum = 0, 0.0, 0.0

    def y(self) -> list[torch.Tensor]:
        b1 = self.betas[0]
        return [b1 * x + (1 - b1) * z for x, z in zip(self.x, self.z)]

    def training_weights(self) -> list[torch.Tensor]:  # where gradients are taken
        return self.y()

    def evaluation_weights(self) -> list[torch.Tensor]:
        return self.x

    def step(self, grads: list[torch.Tensor], lr: float) -> None:
        self.t += 1
        if self.warmup:
            lr = lr * min(1.0, self.t / self.warmup)
        self.lr_max = max(self.lr_max, lr)
        self.weight_sum += self.lr_max**2
        c = self.lr_max**2 / self.weight_sum
        b2 = self.betas[1]
        for i, g in enumerate(grads):
            g = g.to(torch.float64)
            self.v[i] = b2 * self.v[i] + (1 - b2) * g * g
            d = -g / ((self.v[i] / (1 - b2**self.t)).sqrt() + self.eps)
            self.z[i] = (1 - lr * self.wd) * self.z[i] + lr * d
            self.x[i] = (1 - c) * self.x[i] + c * self.z[i]


class ReferenceGPA:
    """Algorithm 1 over any base optimizer, literally, with explicit x, y and z in float64.

    The base optimizer is built over float64 copies of z (``self.z``) and steps them with the
    gradient taken at y; its weight decay acts on z.

    Args:
        params: initial weights (x_0 = z_0 = the given tensors), copied to float64.
        base (type | Callable): the base optimizer class or factory ``(params, **base_kwargs)``.
        mu_x (float, default 0.9967), mu_y (float, default 0.9): as in ``GPA``.
        **base_kwargs: the base's keyword arguments. The lr is passed to ``step``.
    """

    def __init__(self, params, base, mu_x=0.9967, mu_y=0.9, **base_kwargs):
        self.x = [p.detach().to(torch.float64).clone() for p in params]
        self.z = [torch.nn.Parameter(t.clone()) for t in self.x]
        self.base = base(self.z, **base_kwargs)
        self.mu_x, self.mu_y = mu_x, mu_y

    def y(self) -> list[torch.Tensor]:
        return [self.mu_y * x + (1 - self.mu_y) * z.detach() for x, z in zip(self.x, self.z)]

    def training_weights(self) -> list[torch.Tensor]:  # where gradients are taken
        return self.y()

    def evaluation_weights(self) -> list[torch.Tensor]:
        return self.x

    @torch.no_grad()
    def step(self, grads: list[torch.Tensor], lr: float) -> None:
        """One step, given the gradients evaluated at ``self.y()``."""
        for z, g in zip(self.z, grads):
            z.grad = g.to(torch.float64)
        for group in self.base.param_groups:
            group["lr"] = lr
        self.base.step()  # z_{t+1} = BaseOpt step of z_t
        for i, z in enumerate(self.z):
            self.x[i] = self.mu_x * self.x[i] + (1 - self.mu_x) * z.detach()
