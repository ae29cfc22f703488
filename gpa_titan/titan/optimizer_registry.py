"""The one list of optimizers a config can name: ``[optimizer] name`` -> class, the config
fields it takes, its checks, and how DiLoCo's H is expressed for it.

Scripts, tests, the config checks and the optimizer builder all read this table.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from gpa_titan.optim import DiLoCoAdamW, GPAAdamW, ScheduleFreeAdamW
from gpa_titan.optim.hyperparameters import HyperparameterError, check_adamw, check_implementation
from gpa_titan.optim.table4 import diloco_to_gpa

ADAMW_FIELDS = ("lr", "beta1", "beta2", "eps", "weight_decay")  # TorchTitan's own [optimizer] keys
TOML_KEYS = {"betas": "beta1", "betas[0]": "beta1", "betas[1]": "beta2"}  # optimizer argument -> TOML key


@dataclass(frozen=True)
class OptimizerSpec:
    """One selectable optimizer.

    Args:
        name (str): the ``[optimizer] name`` value.
        config_key (str): short name used in file names (``configs/llama_1b_<key>.toml``).
        cls (type): the optimizer class.
        fields (tuple[str, ...]): the ``[optimizer]`` keys it takes beyond AdamW's, named as
            the class's arguments.
        check (Callable): raises ``HyperparameterError`` for a bad value; takes the class's
            keyword arguments (without ``implementation``).
        inner_steps_fields (Callable | None): for optimizers compared at DiLoCo's H, the
            config fields that H (and outer momentum mu) set; None for the others.
    """

    name: str
    config_key: str
    cls: type[torch.optim.Optimizer]
    fields: tuple[str, ...]
    check: Callable[..., None]
    inner_steps_fields: Callable[[int, float], dict[str, Any]] | None = None

    @property
    def takes_inner_steps(self) -> bool:
        return self.inner_steps_fields is not None

    def hyperparameters(self, optimizer_config) -> dict[str, Any]:
        """The class's keyword arguments (without ``implementation``) from ``[optimizer]``."""
        c = optimizer_config
        kwargs = dict(lr=c.lr, betas=(c.beta1, c.beta2), eps=c.eps, weight_decay=c.weight_decay)
        return kwargs | {field: getattr(c, field) for field in self.fields}

    def build_kwargs(self, optimizer_config) -> dict[str, Any]:
        """The keyword arguments that construct the optimizer from ``[optimizer]``."""
        kwargs = self.hyperparameters(optimizer_config)
        impl = optimizer_config.implementation
        if self.cls is torch.optim.AdamW:
            return kwargs | dict(fused=impl == "fused", foreach=impl == "foreach")
        return kwargs | dict(implementation=impl)

    def validate(self, optimizer_config) -> None:
        """Run the optimizer's own checks on ``[optimizer]``; raise ``HyperparameterError``."""
        self.check(**self.hyperparameters(optimizer_config))
        check_implementation(optimizer_config.implementation)


def default_of(cls: type, argument: str) -> Any:
    """The default value of ``cls.__init__``'s ``argument`` (the config's default too)."""
    return inspect.signature(cls.__init__).parameters[argument].default


OPTIMIZERS: dict[str, OptimizerSpec] = {
    spec.name: spec
    for spec in (
        OptimizerSpec("AdamW", "adamw", torch.optim.AdamW, (), check_adamw),
        OptimizerSpec(
            "GPA-AdamW", "gpa", GPAAdamW, ("mu_x", "mu_y"), GPAAdamW.check_hyperparameters,
            inner_steps_fields=lambda h, mu: {"mu_x": diloco_to_gpa(h, mu)[0]},
        ),
        OptimizerSpec(
            "DiLoCo-AdamW", "diloco", DiLoCoAdamW, ("inner_steps", "outer_lr", "outer_momentum"),
            DiLoCoAdamW.check_hyperparameters,
            inner_steps_fields=lambda h, mu: {"inner_steps": h},
        ),
        OptimizerSpec(
            "ScheduleFree-AdamW", "schedule_free", ScheduleFreeAdamW, ("warmup_steps",),
            ScheduleFreeAdamW.check_hyperparameters,
        ),
    )
}
OPTIMIZER_NAMES = tuple(OPTIMIZERS)
EXTRA_FIELDS = {field: spec for spec in OPTIMIZERS.values() for field in spec.fields}  # field -> its optimizer


def get_optimizer_spec(name: str) -> OptimizerSpec:
    if name not in OPTIMIZERS:
        raise KeyError(f"[optimizer] name = {name!r} is not known; choose one of {list(OPTIMIZER_NAMES)}")
    return OPTIMIZERS[name]


def unused_optimizer_keys(flat_config: dict[str, Any]) -> list[str]:
    """The ``optimizer.*`` keys of a flattened config that belong to another optimizer than the
    run's (they do not change its math; the trainer warns that they are ignored)."""
    name = flat_config.get("optimizer.name")
    return [f"optimizer.{key}" for key, owner in EXTRA_FIELDS.items() if owner.name != name]


def toml_key(error: HyperparameterError) -> str:
    """The ``[optimizer]`` key of a rejected optimizer argument."""
    return TOML_KEYS.get(error.argument, error.argument)
