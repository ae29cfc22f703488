"""Schedule-Free AdamW as a special case of GPA (the paper's unification).

Schedule-Free (Defazio et al., 2024) is primal averaging with a *uniform* (learning-rate
weighted) average instead of GPA's exponential one:

    y_t     = beta1 * x_t + (1 - beta1) * z_t
    z_{t+1} = (1 - lr_t * wd) z_t - lr_t * g_t / (sqrt(v_t / bc2) + eps)      (Adam without momentum)
    x_{t+1} = (1 - c_{t+1}) x_t + c_{t+1} z_{t+1},   c_{t+1} = w_t / sum_{i<=t} w_i,  w_t = lr_max_t^2

i.e. GPA with mu_y = beta1 and a per-step mu_x = 1 - c_{t+1}. The memory-efficient
update of GPA holds unchanged for a varying mu_x, so this class reuses GPA's kernels,
state layout (z), train()/eval() and checkpointing.

Difference from the ``schedulefree`` package: weight decay shrinks z (as GPA does) rather
than being evaluated at y. With weight_decay = 0 the two compute the same iterates (a
test checks this against the package).
"""

from __future__ import annotations

from collections.abc import Iterable

from .gpa_adamw import GPACoefficients, PrimalAveragingAdamW
from .hyperparameters import check_adamw, check_integer, check_number


class ScheduleFreeAdamW(PrimalAveragingAdamW):
    """Schedule-Free AdamW in GPA's memory-efficient form.

    Args:
        params: iterable of parameters or of param-group dicts.
        lr (float, default 1e-3): peak learning rate (a scheduler may rewrite it; the
            averaging weights use the largest lr seen so far, squared).
        betas (tuple[float, float], default (0.9, 0.95)): beta1 is the interpolation
            y = beta1 x + (1 - beta1) z (so it must be > 0); beta2 is Adam's second moment.
            The ``schedulefree`` package's defaults; the CPU tuning study chose beta1 0.5
            (the lowest of its grid) at small scale (``docs/results/tuned.json``).
        eps (float, default 1e-8): denominator epsilon.
        weight_decay (float, default 0.1): decoupled weight decay on z.
        warmup_steps (int, default 0): Schedule-Free's own linear warmup of lr (use it
            with a constant schedule; 0 leaves warmup to the scheduler).
        implementation (str, default "fused"): as for ``GPAAdamW``.
    """

    HYPERPARAMETERS = ("lr", "betas", "eps", "weight_decay", "warmup_steps")

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.95),
        eps: float = 1e-8,
        weight_decay: float = 0.1,
        warmup_steps: int = 0,
        implementation: str = "fused",
    ) -> None:
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, warmup_steps=warmup_steps)
        super().__init__(params, defaults, implementation)

    @staticmethod
    def check_hyperparameters(lr, betas, eps, weight_decay, warmup_steps) -> None:
        check_adamw(lr, betas, eps, weight_decay)
        check_number("betas[0]", betas[0], 0.0, 1.0, low_inclusive=False, high_inclusive=False,
                     note="Schedule-Free interpolates y = beta1 x + (1 - beta1) z")
        check_integer("warmup_steps", warmup_steps, 0)

    def _init_group(self, group: dict) -> None:
        super()._init_group(group)
        group["lr_max"], group["weight_sum"] = 0.0, 0.0  # the running averaging weights

    def _interpolation(self, group: dict) -> float:
        return group["betas"][0]

    def _coefficients(self, group: dict) -> GPACoefficients:
        step, warmup = group["step"], group["warmup_steps"]
        lr = group["lr"] * (min(1.0, step / warmup) if warmup else 1.0)
        group["lr_max"] = max(group["lr_max"], lr)
        weight = group["lr_max"] ** 2
        group["weight_sum"] += weight
        c = weight / group["weight_sum"] if group["weight_sum"] > 0 else 0.0
        beta1, beta2 = group["betas"]
        # base direction: Adam without momentum (its beta1 is 0); interpolation mu_y = beta1
        return GPACoefficients.for_step(lr, group["weight_decay"], 0.0, beta2, group["eps"], 1.0 - c, beta1, step)
