"""The base class of optimizers whose evaluation weights differ from their training weights."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch.distributed.tensor import DTensor

from .hyperparameters import check_implementation


def local(t: torch.Tensor) -> torch.Tensor:
    """The tensor this rank owns: the local shard of a DTensor, the tensor itself otherwise.

    All of the optimizers' math is elementwise and every state tensor has the same
    placement as its parameter, so it can run on local shards without communication.
    """
    return t.to_local() if isinstance(t, DTensor) else t


def locals_(ts: Iterable[torch.Tensor]) -> list[torch.Tensor]:
    return [local(t) for t in ts]


def local_grad(p: torch.Tensor) -> torch.Tensor:
    """The local shard of ``p.grad``, placed like ``p``'s local shard.

    Under tensor parallelism without FSDP, some gradients (e.g. of norm weights under
    sequence parallelism) are ``Partial`` DTensors: their local shards are partial sums.
    Such a gradient is reduced to its parameter's placement first (a collective, issued in
    the same parameter order on every rank); taking its local shard directly would
    silently train on a partial gradient.
    """
    grad = p.grad
    if isinstance(grad, DTensor) and isinstance(p, DTensor) and tuple(grad.placements) != tuple(p.placements):
        grad = grad.redistribute(p.device_mesh, p.placements)
    return local(grad)


def is_plain_tensor(t: torch.Tensor) -> bool:
    """Whether ``t`` is a plain ``torch.Tensor`` (not a subclass such as torchao's float8 weight
    wrapper), i.e. whether its memory can be handed to a hand-written kernel."""
    return type(t) is torch.Tensor or type(t) is torch.nn.Parameter


class EvalModeOptimizer(torch.optim.Optimizer):
    """Shared construction and train/eval protocol of GPA-AdamW, DiLoCo-AdamW and Schedule-Free.

    Construction has one path, also taken by ``add_param_group`` after ``__init__``: every
    param group gets the defaults, its hyperparameters are checked by the subclass's
    ``check_hyperparameters`` (a bad group is not added), and ``_init_group`` creates its
    state eagerly (so checkpoint code never needs a warm-up step). Each group carries a
    host-integer ``step`` and a ``train_mode`` flag, both saved with ``state_dict()``.

    ``eval()`` puts the evaluation weights into the parameters and ``train()`` the
    training weights; both are idempotent, and ``step()`` in eval mode raises.

    Subclasses define ``HYPERPARAMETERS`` (the group keys their check takes),
    ``check_hyperparameters(**values)``, ``_init_group(group)``, ``_to_eval(group)``,
    ``_to_train(group)`` and ``eval_weights`` (what eval mode holds, for messages).

    Args:
        params: iterable of parameters or of param-group dicts.
        defaults (dict): the hyperparameters' default values for every group.
        implementation (str): the kernel choice, one of the class's ``IMPLEMENTATIONS``.
    """

    HYPERPARAMETERS: tuple[str, ...] = ()
    IMPLEMENTATIONS: tuple[str, ...] = ("fused", "foreach", "for-loop")
    eval_weights = "the evaluation weights"

    def __init__(self, params: Iterable, defaults: dict[str, Any], implementation: str) -> None:
        check_implementation(implementation, self.IMPLEMENTATIONS)
        self.implementation = implementation
        super().__init__(params, {**defaults, "step": 0, "train_mode": True})

    # ------------------------------------------------------------------ construction
    @staticmethod
    def check_hyperparameters(**values) -> None:
        raise NotImplementedError

    def _init_group(self, group: dict) -> None:
        raise NotImplementedError

    def add_param_group(self, param_group: dict) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        try:
            self.check_hyperparameters(**{key: group[key] for key in self.HYPERPARAMETERS})
        except ValueError:
            self.param_groups.pop()
            raise
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
        with torch.no_grad():
            self._init_group(group)

    @torch.no_grad()
    def reset_state_from_params(self) -> None:
        """Restart from the weights the parameters hold now, as if constructed at them (used
        after a model-only checkpoint load, where the buffers still hold the initialisation)."""
        self.train()
        for group in self.param_groups:
            group["step"] = 0
            self._init_group(group)

    # ------------------------------------------------------------------ modes
    def _to_eval(self, group: dict) -> None:
        raise NotImplementedError

    def _to_train(self, group: dict) -> None:
        raise NotImplementedError

    @property
    def training(self) -> bool:
        return all(group["train_mode"] for group in self.param_groups)

    def eval(self) -> None:
        """Put the evaluation weights into the parameters. Idempotent."""
        with torch.no_grad():
            for group in self.param_groups:
                if group["train_mode"]:
                    self._to_eval(group)
                    group["train_mode"] = False

    def train(self) -> None:
        """Put the training weights back into the parameters. Idempotent."""
        with torch.no_grad():
            for group in self.param_groups:
                if not group["train_mode"]:
                    self._to_train(group)
                    group["train_mode"] = True

    # ------------------------------------------------------------------ step helpers
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


class StoresYAndZ(EvalModeOptimizer):
    """An ``EvalModeOptimizer`` that stores Appendix C.2's y in the parameters and z in
    ``state[p]["z"]``: ``eval()`` moves the parameters to x = y/mu_y + (1 - 1/mu_y) z and
    ``train()`` back to y = mu_y x + (1 - mu_y) z, where subclasses say what mu_y is
    (``_interpolation``). Args: those of ``EvalModeOptimizer``."""

    def _interpolation(self, group: dict) -> float:
        raise NotImplementedError

    def _to_eval(self, group: dict) -> None:  # x = y + (1 - 1/mu_y) (z - y)
        self._lerp_params_to_z(group, 1.0 - 1.0 / self._interpolation(group))

    def _to_train(self, group: dict) -> None:  # y = x + (1 - mu_y) (z - x)
        self._lerp_params_to_z(group, 1.0 - self._interpolation(group))

    def _lerp_params_to_z(self, group: dict, weight: float) -> None:
        params = locals_(group["params"])
        if params:
            torch._foreach_lerp_(params, locals_(self.state[p]["z"] for p in group["params"]), weight)
