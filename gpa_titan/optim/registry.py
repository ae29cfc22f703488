"""The one list of optimizers a config can name (plain PyTorch, no TorchTitan): per optimizer
its ``[optimizer] name``, its class, its config fields, its checks, and how DiLoCo's H maps
onto it.

An optimizer's config fields are the arguments its class takes beyond torch's AdamW (and
``implementation``), read from the class's signature, so they are written once, in the
class; their defaults are the class's defaults. Keyword-only arguments (after ``*``) are
settings for code, not config fields (Muon's ``ns_coefficients``, ``adamw_modules``). A field
may belong to several optimizers (GPA-AdamW's and GPA-Muon's ``mu_x``; Muon's and GPA-Muon's
``momentum``): ``EXTRA_FIELDS`` lists its owners, whose defaults agree (a test checks). The
TorchTitan layer declares the same fields in ``gpa_titan/titan/job_config.py``'s ``Optimizer``
dataclass (TorchTitan needs the dataclass; a test checks that the two agree). Adding an
optimizer: its class, one entry in ``OPTIMIZERS`` and its dataclass fields.

Scripts, tests, the config checks, the optimizer builder and the tuning study read this table.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from .diloco_adamw import DiLoCoAdamW
from .gpa_adamw import GPAAdamW
from .gpa_muon import GPAMuon
from .hyperparameters import HyperparameterError, check_adamw, check_implementation
from .muon import SAME_AS_MUON, Muon
from .schedule_free import ScheduleFreeAdamW
from .table4 import PAPER_MU, averaging_window, diloco_window, effective_inner_steps, gpa_mu_x

ADAMW_KEYS = ("lr", "beta1", "beta2", "eps", "weight_decay")  # TorchTitan's own [optimizer] keys, every optimizer's
TOML_KEYS = {"betas": "beta1", "betas[0]": "beta1", "betas[1]": "beta2"}  # optimizer argument -> TOML key
_NOT_FIELDS = ("self", "implementation")  # arguments that are not [optimizer] fields of their own


def config_fields(cls: type) -> tuple[str, ...]:
    """The ``[optimizer]`` fields of an optimizer class: the arguments of its ``__init__`` beyond
    torch's AdamW's, ``implementation`` and keyword-only ones, in signature order (``("mu_x",
    "mu_y")`` for GPA)."""
    adamw = set(inspect.signature(torch.optim.AdamW.__init__).parameters)
    return tuple(name for name, p in inspect.signature(cls.__init__).parameters.items()
                 if name not in adamw and name not in _NOT_FIELDS
                 and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


def default_of(cls: type, argument: str) -> Any:
    """The default value of ``cls.__init__``'s ``argument`` (the config's default too)."""
    return inspect.signature(cls.__init__).parameters[argument].default


def _diloco_inner_steps(h: float, mu: float) -> int:
    """DiLoCo's H is its number of inner steps: an integer >= 1."""
    if float(h) != int(h) or h < 1:
        raise ValueError(f"DiLoCo-AdamW: H = {h!r} must be an integer >= 1")
    return int(h)


@dataclass(frozen=True)
class OptimizerSpec:
    """One selectable optimizer.

    Args:
        name (str): the ``[optimizer] name`` value.
        config_key (str): short name used in file names (``configs/llama_1b_<key>.toml``).
        cls (type): the optimizer class; its config fields are ``config_fields(cls)``.
        check (Callable): raises ``HyperparameterError`` for a bad value; takes the class's
            keyword arguments (without ``implementation``).
        h_field (str | None, default None): for optimizers compared at DiLoCo's H, the config
            field that H sets (GPA: mu_x; DiLoCo: inner_steps); None for the others.
        h_value (Callable | None, default None): ``(H, outer momentum mu) -> h_field's value``
            (GPA: Table 4's mu**(1/H), for any H > 0; DiLoCo: H itself, an integer >= 1).
        h_of_value (Callable | None, default None): the inverse, ``(h_field's value, mu) -> H``
            or None where the value stands for no averaging (GPA's mu_x = 0: plain AdamW).
        window (Callable | None, default None): ``fields -> steps averaged over`` (GPA:
            1/(1 - mu_x); DiLoCo: H/(1 - outer momentum)).
        fixed_in_studies (Mapping[str, Any], default {}): fields a tuning study holds at a
            value rather than tuning, field -> value (Schedule-Free's warmup_steps at its
            default: the study's schedule has its own warmup; Muon's adjust_lr_fn at
            "match_rms_adamw", so one lr, on AdamW's scale, serves its matrices and its
            AdamW part, and the lr grid is AdamW's).
        in_study (bool, default True): whether the tuning study (``gpa_titan.study``:
            ``METHOD_KNOBS``, ``docs/results/tuned.json``, the grid's default optimizers) covers it.
    """

    name: str
    config_key: str
    cls: type[torch.optim.Optimizer]
    check: Callable[..., None]
    h_field: str | None = None
    h_value: Callable[[float, float], Any] | None = None
    h_of_value: Callable[[Any, float], float | None] | None = None
    window: Callable[[Mapping[str, Any]], float] | None = None
    fixed_in_studies: Mapping[str, Any] = field(default_factory=dict)
    in_study: bool = True

    @property
    def fields(self) -> tuple[str, ...]:
        """The ``[optimizer]`` keys it takes beyond AdamW's, named as the class's arguments."""
        return config_fields(self.cls)

    @property
    def takes_inner_steps(self) -> bool:
        return self.h_field is not None

    @property
    def whole_h(self) -> bool:
        """Whether its H is a whole number (the field H sets is an integer: DiLoCo's inner_steps)."""
        return self.h_field is not None and isinstance(self.default(self.h_field), int)

    def h_fields(self, h: float, mu: float) -> dict[str, Any]:
        """The config fields that DiLoCo's H (with outer momentum ``mu``) sets: ``{h_field: value}``."""
        if self.h_field is None or self.h_value is None:
            raise ValueError(f"{self.name} has no H (inner steps): only {list(H_OPTIMIZERS)} take one")
        return {self.h_field: self.h_value(h, mu)}

    def h_of(self, fields: Mapping[str, Any], mu: float = PAPER_MU) -> float | None:
        """The H that ``[optimizer]`` values stand for (not rounded); None for optimizers without
        an H, values without the field H sets, and values that mean no averaging."""
        if self.h_field is None or self.h_of_value is None or self.h_field not in fields:
            return None
        return self.h_of_value(fields[self.h_field], mu)

    def window_of(self, fields: Mapping[str, Any]) -> float | None:
        """How many steps ``[optimizer]`` values average over; None where ``h_of`` is None."""
        if self.window is None or self.h_of(fields) is None:
            return None
        return self.window({**{f: self.default(f) for f in self.fields}, **fields})

    def default(self, field: str) -> Any:
        return default_of(self.cls, field)

    def kwargs_of(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The class's keyword arguments (without ``implementation``) from ``[optimizer]`` values
        by TOML key (``beta1``, ``beta2``, ``mu_x``, ...); a field not given takes its default."""
        kwargs = dict(lr=values["lr"], betas=(values["beta1"], values["beta2"]), eps=values["eps"],
                      weight_decay=values["weight_decay"])
        return kwargs | {field: values[field] if field in values else self.default(field) for field in self.fields}

    def hyperparameters(self, optimizer_config) -> dict[str, Any]:
        """The class's keyword arguments (without ``implementation``) from ``[optimizer]``."""
        keys = (*ADAMW_KEYS, *self.fields)
        return self.kwargs_of({key: getattr(optimizer_config, key) for key in keys})

    def build_kwargs(self, optimizer_config) -> dict[str, Any]:
        """The keyword arguments that construct the optimizer from ``[optimizer]``."""
        kwargs = self.hyperparameters(optimizer_config)
        impl = optimizer_config.implementation
        if self.cls is torch.optim.AdamW:
            return kwargs | dict(fused=impl == "fused", foreach=impl == "foreach")
        if "implementation" not in inspect.signature(self.cls.__init__).parameters:
            return kwargs  # Muon: its AdamW part takes torch's default kernel; the math is the same
        return kwargs | dict(implementation=impl)

    def validate(self, optimizer_config) -> None:
        """Run the optimizer's own checks on ``[optimizer]``; raise ``HyperparameterError``."""
        self.check(**self.hyperparameters(optimizer_config))
        check_implementation(optimizer_config.implementation)


# Muon's fields a study does not tune: Nesterov and 5 Newton-Schulz steps as torch's defaults; lr
# scaled to AdamW's update RMS, so one lr (and the setup's weight decay) serves the matrices and the
# embeddings/head/norms that AdamW moves, as in Moonshot's "Muon is Scalable" (Liu et al., 2025)
MUON_FIXED_IN_STUDIES: dict[str, Any] = {
    "nesterov": default_of(Muon, "nesterov"), "ns_steps": default_of(Muon, "ns_steps"),
    "adjust_lr_fn": "match_rms_adamw", "adamw_lr": SAME_AS_MUON, "adamw_weight_decay": SAME_AS_MUON,
}

OPTIMIZERS: dict[str, OptimizerSpec] = {
    spec.name: spec
    for spec in (
        OptimizerSpec("AdamW", "adamw", torch.optim.AdamW, check_adamw),
        OptimizerSpec("GPA-AdamW", "gpa", GPAAdamW, GPAAdamW.check_hyperparameters, h_field="mu_x",
                      h_value=gpa_mu_x, h_of_value=effective_inner_steps,
                      window=lambda f: averaging_window(f["mu_x"])),
        OptimizerSpec("DiLoCo-AdamW", "diloco", DiLoCoAdamW, DiLoCoAdamW.check_hyperparameters,
                      h_field="inner_steps", h_value=_diloco_inner_steps, h_of_value=lambda n, mu: float(n),
                      window=lambda f: diloco_window(f["inner_steps"], f["outer_momentum"])),
        OptimizerSpec("ScheduleFree-AdamW", "schedule_free", ScheduleFreeAdamW, ScheduleFreeAdamW.check_hyperparameters,
                      fixed_in_studies={"warmup_steps": default_of(ScheduleFreeAdamW, "warmup_steps")}),
        OptimizerSpec("Muon", "muon", Muon, Muon.check_arguments, fixed_in_studies=MUON_FIXED_IN_STUDIES),
        OptimizerSpec("GPA-Muon", "gpa_muon", GPAMuon, GPAMuon.check_arguments, h_field="mu_x",
                      h_value=gpa_mu_x, h_of_value=effective_inner_steps,
                      window=lambda f: averaging_window(f["mu_x"]), fixed_in_studies=MUON_FIXED_IN_STUDIES),
    )
}
OPTIMIZER_NAMES = tuple(OPTIMIZERS)
STUDIED_OPTIMIZERS = tuple(name for name, spec in OPTIMIZERS.items() if spec.in_study)  # the tuning study's
H_OPTIMIZERS = tuple(name for name, spec in OPTIMIZERS.items() if spec.takes_inner_steps)


def h_of_setting(optimizer: str, fields: Mapping[str, Any]) -> float | None:
    """The H of an optimizer's ``[optimizer]`` values (``OptimizerSpec.h_of``); None for a name
    that is not an optimizer here."""
    spec = OPTIMIZERS.get(optimizer)
    return None if spec is None else spec.h_of(fields)


def window_of_setting(optimizer: str, fields: Mapping[str, Any]) -> float | None:
    """How many steps an optimizer's ``[optimizer]`` values average over (``OptimizerSpec.window_of``)."""
    spec = OPTIMIZERS.get(optimizer)
    return None if spec is None else spec.window_of(fields)


def _owners_by_field() -> dict[str, tuple[OptimizerSpec, ...]]:
    owners: dict[str, tuple[OptimizerSpec, ...]] = {}
    for spec in OPTIMIZERS.values():
        for name in spec.fields:
            owners[name] = (*owners.get(name, ()), spec)
    return owners


# field -> the optimizers that take it (its owners), in registry order; fields in first-owner order
EXTRA_FIELDS: dict[str, tuple[OptimizerSpec, ...]] = _owners_by_field()
SETTING_ORDER = ("lr", "beta1", "beta2", *EXTRA_FIELDS, "eps", "weight_decay")  # every [optimizer] value: table order


def get_optimizer_spec(name: str) -> OptimizerSpec:
    if name not in OPTIMIZERS:
        raise KeyError(f"[optimizer] name = {name!r} is not known; choose one of {list(OPTIMIZER_NAMES)}")
    return OPTIMIZERS[name]


def check_fields(fields: Mapping[str, Any]) -> None:
    """Raise ``HyperparameterError`` (naming the optimizer argument; ``toml_key`` gives the
    ``[optimizer]`` key) for a value the optimizer named by ``fields["name"]`` rejects."""
    spec = get_optimizer_spec(fields["name"])
    spec.check(**spec.kwargs_of(fields))


def unused_optimizer_keys(flat_config: dict[str, Any]) -> list[str]:
    """The ``optimizer.*`` keys of a flattened config that belong to another optimizer than the
    run's (they do not change its math; the trainer warns that they are ignored)."""
    name = flat_config.get("optimizer.name")
    return [f"optimizer.{key}" for key, owners in EXTRA_FIELDS.items() if name not in owner_names(key)]


def owner_names(field: str) -> tuple[str, ...]:
    """The ``[optimizer] name``s that take ``field`` (``("GPA-AdamW", "GPA-Muon")`` for mu_x)."""
    return tuple(spec.name for spec in EXTRA_FIELDS[field])


def owners_text(field: str) -> str:
    """Who takes ``field``, for messages: ``"GPA-AdamW or GPA-Muon"``."""
    return " or ".join(owner_names(field))


def field_default(field: str) -> Any:
    """The default of an ``[optimizer]`` field (its owners' classes agree on it)."""
    return EXTRA_FIELDS[field][0].default(field)


def toml_key(error: HyperparameterError) -> str:
    """The ``[optimizer]`` key of a rejected optimizer argument."""
    return TOML_KEYS.get(error.argument, error.argument)
