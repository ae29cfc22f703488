"""The TrainSpec optimizer builder: ``[optimizer] name`` picks an optimizer from the registry,
and the container forwards ``train()``/``eval()`` to the averaging ones."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch.nn as nn
from torchtitan.components.optimizer import OptimizersContainer

from gpa_titan.optim import EvalModeOptimizer
from gpa_titan.optim.registry import get_optimizer_spec


class EvalWeightsOptimizersContainer(OptimizersContainer):
    """TorchTitan's OptimizersContainer plus the train/eval protocol of averaging optimizers.

    ``eval()`` puts the evaluation weights into the model (x for GPA, the outer weights
    for DiLoCo, Schedule-Free's x), ``train()`` the training weights; for AdamW both do
    nothing. ``evaluation_weights()`` is a context manager doing eval, then train. After
    every swap the callables in ``swap_hooks`` run (the trainer adds the model converters'
    post-optimizer hook, so float8 scales match the weights now in place).
    Checkpointing (DCP, flattened FQN keys, resharding) is inherited unchanged.

    Optimizer classes with ``takes_named_parameters = True`` (Muon, GPA-Muon, which split
    parameters by name) are built over ``model.named_parameters()`` (TorchTitan's Llama names:
    ``tok_embeddings.weight``, ``layers.N.attention.wq.weight``, ...); the others over the
    parameters, as in TorchTitan.

    Args: those of TorchTitan's ``OptimizersContainer`` (model parts, optimizer class, kwargs).
    """

    # param-group entries that are state, not settings (kept from a checkpoint on load)
    STATE_KEYS = frozenset({"params", "step", "train_mode", "initial_lr", "lr_max", "weight_sum"})

    def __init__(self, model_parts: list[nn.Module], optimizer_cls: type, optimizer_kwargs: dict) -> None:
        if getattr(optimizer_cls, "takes_named_parameters", False):
            self._build_over_named_parameters(model_parts, optimizer_cls, optimizer_kwargs)
        else:
            super().__init__(model_parts, optimizer_cls, optimizer_kwargs)
        self.swap_hooks: list[Callable[[], None]] = []
        self._configured = [
            [{k: v for k, v in group.items() if k not in self.STATE_KEYS} for group in opt.param_groups]
            for opt in self.optimizers
        ]

    def _build_over_named_parameters(self, model_parts: list[nn.Module], optimizer_cls: type,
                                     optimizer_kwargs: dict) -> None:
        """TorchTitan's ``OptimizersContainer.__init__``, with ``(name, parameter)`` pairs."""
        all_params = []
        self.optimizers, self.model_parts = [], model_parts
        for model in model_parts:
            named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
            self.optimizers.append(optimizer_cls(named, **optimizer_kwargs))
            all_params.extend(p for _, p in named)
        self._validate_length(len(model_parts))
        self._post_init(all_params, optimizer_kwargs)

    def reapply_configured_hyperparameters(self) -> None:
        """Put this launch's hyperparameters (lr, betas, weight decay, mu_x, ...) back into the
        param groups after a checkpoint load restored the saved ones; state entries (step
        counters, mode flags, Schedule-Free's running weights) stay as loaded."""
        for opt, configured in zip(self.optimizers, self._configured, strict=True):
            for group, values in zip(opt.param_groups, configured, strict=True):
                group.update(values)

    def _averaging(self) -> Iterator[EvalModeOptimizer]:
        return (o for o in self.optimizers if isinstance(o, EvalModeOptimizer))

    def eval(self) -> None:
        self._swap("eval")

    def train(self) -> None:
        self._swap("train")

    def _swap(self, mode: str) -> None:
        swapped = False
        for opt in self._averaging():
            swapped |= opt.training != (mode == "train")
            getattr(opt, mode)()
        self._drop_unsharded_copies()
        if swapped:
            for hook in self.swap_hooks:
                hook()

    def _drop_unsharded_copies(self) -> None:
        """FSDP2 keeps modules with ``reshard_after_forward=False`` (TorchTitan's norm and
        output) unsharded after a forward without backward, e.g. validation. The swap
        just changed the sharded weights, so free those copies: the next forward must
        all-gather the weights now in place, not reuse the ones from before the swap."""
        from torch.distributed.fsdp import FSDPModule

        for model in self.model_parts:
            for module in model.modules():
                if isinstance(module, FSDPModule):
                    module.reshard()

    @contextlib.contextmanager
    def evaluation_weights(self):
        self.eval()
        try:
            yield
        finally:
            self.train()

    def restart_fresh_state(self) -> None:
        """Re-anchor the extra buffers at the current weights for optimizers that have not
        stepped yet (after a model-only checkpoint load, z / the outer weights must equal
        the freshly loaded weights, not the random initialisation)."""
        for opt in self._averaging():
            if all(g["step"] == 0 for g in opt.param_groups):
                opt.reset_state_from_params()


def build_optimizers(
    model_parts: list[nn.Module], optimizer_config, parallel_dims, ft_manager=None
) -> EvalWeightsOptimizersContainer:
    """TrainSpec ``build_optimizers_fn``: one optimizer per model part, in a container."""
    if optimizer_config.early_step_in_backward:
        raise NotImplementedError("[optimizer] early_step_in_backward is not supported by gpa_titan's optimizers")
    if ft_manager is not None and getattr(ft_manager, "enabled", False):
        raise NotImplementedError("[fault_tolerance] is not supported by gpa_titan's optimizers")
    spec = get_optimizer_spec(optimizer_config.name)
    return EvalWeightsOptimizersContainer(model_parts, spec.cls, spec.build_kwargs(optimizer_config))
