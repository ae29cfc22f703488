"""GPA over any base optimizer: Algorithm 1 of arXiv 2512.17131 with BaseOpt moving z.

    y_t     = mu_y * x_t + (1 - mu_y) * z_t          (gradients are taken here)
    z_{t+1} = BaseOpt step of z_t with the gradient taken at y_t (its weight decay acts on z)
    x_{t+1} = mu_x * x_t + (1 - mu_x) * z_{t+1}      (the model you evaluate and ship)

Stored as in Appendix C.2: the parameters hold y and one buffer per parameter holds z
(``state[p]["z"]``); x = y / mu_y + (1 - 1/mu_y) z is recovered on ``eval()``. Substituting
x gives

    y_{t+1} = mu_x y_t - mu_x (1 - mu_y) z_t + (1 - mu_x mu_y) z_{t+1},

which needs z only before and after the base step, so no further buffer is kept. A step is:
one elementwise pass ``y <- mu_x y - mu_x (1 - mu_y) z``; the base optimizer's own ``step()``
with every parameter holding z; one pass ``y <- y + (1 - mu_x mu_y) z``.

The base optimizer is built over the model's own parameter objects and shares GPA's
``state`` and ``param_groups``, so its state is the parameters' state: ``state_dict()``,
TorchTitan's DCP path (state flattened by parameter FQN, resharded on load) and LR
schedulers see one optimizer. During its step a parameter holds z by pointing the
parameter's (local) tensor at z's memory (``Tensor.data``), not by copying: see
``GPA._parameters_hold_z``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch.distributed.tensor import DTensor, Shard

from .base import StoresYAndZ, is_plain_tensor, local, locals_
from .hyperparameters import check_averaging
from .table4 import PAPER_MU_Y

BaseSpec = str | Callable[..., torch.optim.Optimizer]

# Bases whose update of a tensor reads only that tensor's own entries (and scalars), so that
# they may run on the local shard of an FSDP2/DTensor parameter without communication.
ELEMENTWISE_BASES: tuple[type, ...] = (
    torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW, torch.optim.RAdam, torch.optim.RMSprop,
)
# Bases for which one step with zero gradients at lr=0 and weight_decay=0 creates their state at its fresh
# values apart from "step" counters (which GPA sets back to 0) and moves no parameter. The
# unit tests check each one: GPA with mu_x=0 equals the base alone, bit for bit.
ZERO_STEP_BASES: tuple[type, ...] = (*ELEMENTWISE_BASES, torch.optim.Muon, torch.optim.Adafactor)
SHARDED_MATRICES_FLAG = "handles_sharded_matrices"  # class attribute: True if the base gathers what it needs
ZERO_STEP_FLAG = "zero_step_creates_state"  # class attribute: True if the base belongs in ZERO_STEP_BASES
GPA_GROUP_KEYS = ("mu_x", "mu_y", "step", "train_mode")  # GPA's own keys in every param group


def resolve_base(base: BaseSpec) -> Callable[..., torch.optim.Optimizer]:
    """The optimizer class or factory that ``base`` names.

    ``base`` is a class or any callable ``(params, **kwargs) -> torch.optim.Optimizer``, or a
    string (for configs): the name of a class in ``torch.optim`` (``"AdamW"``, ``"SGD"``,
    ``"Muon"``) or a dotted path ``"package.module.ClassName"``.
    """
    if callable(base):
        return base
    if not isinstance(base, str) or not base:
        raise ValueError(f"GPA: base={base!r} must be an optimizer class, a factory or a class name")
    module_name, _, name = base.rpartition(".")
    try:
        found = getattr(importlib.import_module(module_name or "torch.optim"), name)
    except (ImportError, AttributeError):
        where = f"module {module_name!r}" if module_name else "torch.optim"
        raise ValueError(
            f"GPA: base={base!r} names nothing in {where}; give a torch.optim class name (e.g. 'AdamW', "
            f"'SGD', 'Muon') or a dotted path 'package.module.ClassName'"
        ) from None
    if not callable(found):
        raise ValueError(f"GPA: base={base!r} is not an optimizer class or factory")
    return found


def own_local_tensor(t: torch.Tensor) -> torch.Tensor:
    """The tensor object a DTensor holds its local shard in (``to_local()`` of a DTensor
    parameter returns a new view of it), or ``t`` itself when it is not a DTensor."""
    return t._local_tensor if isinstance(t, DTensor) else t


class GPA(StoresYAndZ):
    """Generalized Primal Averaging (Algorithm 1 of arXiv 2512.17131) over a base optimizer.

    ``GPA(model.parameters(), base="SGD", lr=0.1, momentum=0.9, mu_x=0.99, mu_y=0.9)``
    builds ``torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)`` as the base, which
    moves z. Every keyword argument that is not GPA's own goes to the base, so one flat set
    of keys (a config section) describes both; the base's own defaults apply to keys not
    given. Param groups carry the base's hyperparameters and GPA's ``mu_x``/``mu_y``, and a
    scheduler's ``group["lr"]`` is the base's learning rate.

    In train mode the parameters hold y, where gradients are evaluated; ``eval()`` puts x
    (the averaged model to validate, checkpoint and ship) into them and ``train()`` puts y
    back. ``step()`` in eval mode raises. State per parameter: ``z`` plus the base's own
    state, in one dict keyed by the parameter (``optimizer.state[p]``, which is also
    ``optimizer.base_optimizer.state[p]``). Both are created at construction and by
    ``add_param_group`` (eager state: checkpoint code never needs a warm-up step): the base's
    by one base step with zero gradients at lr=0 and weight_decay=0, after which every
    ``"step"`` counter in its state is set back to 0. That is exact for the bases in
    ``ZERO_STEP_BASES`` (SGD only with ``dampening=0``, since torch's SGD takes its first
    momentum buffer undamped); any other base is refused unless its class sets
    ``zero_step_creates_state = True``.

    ``mu_x = 0`` is exactly the base optimizer (bit for bit); ``mu_y = 0`` is rejected as in
    ``GPAAdamW``. For AdamW prefer ``GPAAdamW``, the fused fast path of the same update.

    Sharded parameters (DTensors with a ``Shard`` placement, as FSDP2 makes): the base steps
    the local shards. That is right for elementwise bases (``ELEMENTWISE_BASES``); any other
    base (Muon, Adafactor, Shampoo, ...) is refused on sharded parameters unless its class sets
    ``handles_sharded_matrices = True`` (it assembles the whole matrices it needs itself).

    Args:
        params: iterable of parameters or of param-group dicts (a group may set any base
            hyperparameter and ``mu_x``/``mu_y``).
        base (str | type | Callable, default "AdamW"): the base optimizer: a
            ``torch.optim.Optimizer`` class, a factory ``(params, **base_kwargs) -> Optimizer``
            that returns one optimizer over exactly these params, or a string for configs: a
            ``torch.optim`` class name (``"AdamW"``, ``"SGD"``, ``"Muon"``) or a dotted path
            ``"package.module.ClassName"``.
        mu_x (float, default 0.9967): averaging rate of x in [0, 1); the paper's
            0.9**(1/32) (Section 3.1, DiLoCo's mu = 0.9 at H = 32).
        mu_y (float, default 0.9): interpolation of y between x and z, in (0, 1]; the paper's
            (``table4.PAPER_MU_Y``).
        implementation (str, default "foreach"): GPA's own two elementwise passes:
            "foreach" (``torch._foreach_*`` ops; "fused" is accepted and means the same) or
            "for-loop". The base's kernel is the base's choice (e.g. ``fused=True`` for AdamW).
        **base_kwargs: the base optimizer's keyword arguments (``lr``, ``weight_decay``,
            ``momentum``, ...), each defaulting to the base's own default; a key GPA keeps in
            its groups (``step``, ``train_mode``) may not be among the base's.
    """

    HYPERPARAMETERS = ("mu_x", "mu_y")
    IMPLEMENTATIONS = ("foreach", "fused", "for-loop")
    eval_weights = "x"

    def __init__(
        self,
        params: Iterable,
        base: BaseSpec = "AdamW",
        mu_x: float = 0.9967,
        mu_y: float = PAPER_MU_Y,
        implementation: str = "foreach",
        **base_kwargs: Any,
    ) -> None:
        self._base_factory = resolve_base(base)
        self._base_kwargs = base_kwargs
        self.base_optimizer = self._build_base(params)
        clash = sorted(set(self.base_optimizer.defaults) & set(GPA_GROUP_KEYS))
        if clash:
            raise ValueError(
                f"GPA: the base {type(self.base_optimizer).__name__} has param-group keys {clash}, which GPA keeps "
                f"for itself; wrap the base in a class whose keys differ"
            )
        self._check_zero_step_creates_state()
        defaults = {**self.base_optimizer.defaults, "mu_x": mu_x, "mu_y": mu_y}
        self._constructed = False
        # GPA's groups are the base's group dicts (the base filled its defaults in), with GPA's keys added
        super().__init__(self.base_optimizer.param_groups, defaults, implementation)
        self._constructed = True

    def _build_base(self, params: Iterable) -> torch.optim.Optimizer:
        optimizer = self._base_factory(params, **self._base_kwargs)
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise ValueError(f"GPA: base {self._base_factory!r} made a {type(optimizer).__name__}, not a "
                             f"torch.optim.Optimizer")
        return optimizer

    def _check_zero_step_creates_state(self) -> None:
        cls = type(self.base_optimizer)
        if cls not in ZERO_STEP_BASES and not getattr(cls, ZERO_STEP_FLAG, False):
            raise ValueError(
                f"GPA cannot create the state of base {cls.__name__} before its first step (eager state, which "
                f"checkpoints need): it is not one of {[c.__name__ for c in ZERO_STEP_BASES]}. If one step of it "
                f"with zero gradients at lr=0 and weight_decay=0 creates its state at its fresh values (apart from "
                f"'step' counters) and moves no parameter, set the class attribute {ZERO_STEP_FLAG} = True on it"
            )

    # ------------------------------------------------------------------ construction
    @staticmethod
    def check_hyperparameters(mu_x, mu_y) -> None:
        check_averaging(mu_x, mu_y)

    def add_param_group(self, param_group: dict) -> None:
        """Add a group: the base's checks (a throwaway base is built over it), GPA's checks,
        then eager state, as at construction."""
        if isinstance(param_group.get("params"), torch.Tensor):
            param_group["params"] = [param_group["params"]]
        else:
            param_group["params"] = list(param_group["params"])
        if self._constructed:  # the base has not seen this group yet
            self._build_base([{k: v for k, v in param_group.items() if k not in GPA_GROUP_KEYS}])
        self._check_base_takes({**self.defaults, **param_group})
        super().add_param_group(param_group)

    def _share_with_base(self) -> None:
        """Make the base optimizer read and write GPA's ``state`` and ``param_groups`` objects."""
        self.base_optimizer.state = self.state
        self.base_optimizer.param_groups = self.param_groups

    def _init_group(self, group: dict) -> None:
        for p in group["params"]:
            self.state[p] = {}  # torch's optimizers create their state where it is empty
        self._share_with_base()
        self._create_base_state(group)
        for p in group["params"]:
            if "z" in self.state[p]:
                raise ValueError(f"GPA: the base {type(self.base_optimizer).__name__} keeps a state entry 'z', "
                                 f"which is GPA's; wrap the base in a class that names it otherwise")
            self.state[p]["z"] = p.detach().clone()

    def _check_base_takes(self, group: dict) -> None:
        """Raise if the base cannot step this group's parameters under GPA (sharded parameters
        for a base that is not elementwise; SGD's damped momentum, which eager state changes)."""
        cls = type(self.base_optimizer)
        if isinstance(self.base_optimizer, torch.optim.SGD) and group["momentum"] and group["dampening"]:
            raise ValueError(
                f"GPA over SGD: dampening={group['dampening']} with momentum is not supported: torch's SGD takes "
                f"its first momentum buffer undamped, which GPA's eager state cannot reproduce; use dampening=0"
            )
        if cls in ELEMENTWISE_BASES or getattr(cls, SHARDED_MATRICES_FLAG, False):
            return
        for p in group["params"]:
            if isinstance(p, DTensor) and any(isinstance(placement, Shard) for placement in p.placements):
                raise ValueError(
                    f"GPA: base {cls.__name__} is not elementwise and this parameter of shape {tuple(p.shape)} is "
                    f"sharded ({p.placements}): stepping its local shard would be wrong. Use a base that gathers "
                    f"whole matrices and says so with the class attribute {SHARDED_MATRICES_FLAG} = True (e.g. this "
                    f"package's FSDP2 Muon), an elementwise base ({[c.__name__ for c in ELEMENTWISE_BASES]}), or "
                    f"give these parameters another param group or optimizer"
                )

    def _create_base_state(self, group: dict) -> None:
        """One base step over this group alone with zero gradients at lr=0 and weight_decay=0
        (what ``torch.distributed.checkpoint`` does to an optimizer without state, there without
        zeroing weight decay, which as an L2 term would enter the moments), then every ``"step"``
        counter of the base's state back to 0."""
        params = group["params"]
        grads = [p.grad for p in params]
        scalars = {key: group[key] for key in ("lr", "weight_decay") if key in group}
        try:
            for p in params:
                p.grad = torch.zeros_like(p)
            for key, value in scalars.items():
                group[key] = torch.zeros_like(value) if torch.is_tensor(value) else 0.0
            self.base_optimizer.param_groups = [group]
            self.base_optimizer.step()
        finally:
            self.base_optimizer.param_groups = self.param_groups
            group.update(scalars)
            for p, grad in zip(params, grads, strict=True):
                p.grad = grad
        for p in params:
            state = self.state[p]
            if "step" in state:
                state["step"] = state["step"].zero_() if torch.is_tensor(state["step"]) else 0

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        self._share_with_base()  # loading replaced the state and group objects

    # ------------------------------------------------------------------ modes
    def _interpolation(self, group: dict) -> float:  # where y sits between x and z
        return group["mu_y"]

    # ------------------------------------------------------------------ step
    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """Take one step from the gradients in ``p.grad`` (taken at y)."""
        loss = self._begin_step(closure)
        stepped = []
        for group in self.param_groups:
            params = self._params_with_grad(group)
            if not params:
                continue
            group["step"] += 1
            mu_x, mu_y = group["mu_x"], group["mu_y"]
            self._axpby(params, mu_x, -mu_x * (1.0 - mu_y))  # y <- mu_x y - mu_x (1 - mu_y) z_t
            stepped.append((group, params))
        with self._parameters_hold_z([p for _, params in stepped for p in params]):
            self.base_optimizer.step()  # z_t -> z_{t+1}, from the gradients taken at y
        for group, params in stepped:
            self._axpby(params, 1.0, 1.0 - group["mu_x"] * group["mu_y"])  # y <- y + (1 - mu_x mu_y) z_{t+1}
        return loss

    def _axpby(self, params: list[torch.Tensor], a: float, b: float) -> None:
        """y <- a * y + b * z for each parameter (y in the parameter, z in its state)."""
        ys, zs = locals_(params), locals_(self.state[p]["z"] for p in params)
        if self.implementation == "for-loop":
            for y, z in zip(ys, zs, strict=True):
                y.mul_(a).add_(z, alpha=b)
        else:
            torch._foreach_mul_(ys, a)
            torch._foreach_add_(ys, zs, alpha=b)

    @contextmanager
    def _parameters_hold_z(self, params: list[torch.Tensor]) -> Iterator[None]:
        """Inside: every parameter's (local) tensor is its z buffer, so the base optimizer moves
        z in place and reads the parameter's own gradient (taken at y) and state; after: the
        parameters hold y again.

        A plain tensor (an ordinary parameter, or a DTensor's local shard) is pointed at z's
        memory through ``Tensor.data`` and back: no copy, and the parameter object, its
        gradient, hooks and autograd edge stay as they are. (``torch.utils.swap_tensors`` would
        swap the gradient and the hooks too, and poisons a parameter's AccumulateGrad node; and a
        DTensor's ``.data`` would not reach its local tensor, nor would the ``.data`` of what
        ``to_local()`` returns for a DTensor parameter: a fresh view.) Tensor subclasses (torchao's
        float8 weights) keep their data elsewhere, so they are copied instead: y to a temporary,
        z into the parameter and back after the step.
        """
        pointed, copied = [], []
        for p in params:
            y, z = own_local_tensor(p), local(self.state[p]["z"])
            if is_plain_tensor(y) and is_plain_tensor(z):
                pointed.append((y, y.data))
                y.data = z
            else:
                copied.append((y, z, y.clone()))
                y.copy_(z)
        try:
            yield
        finally:
            for y, y_data in pointed:
                y.data = y_data
            for y, z, y_data in copied:
                z.copy_(y)
                y.copy_(y_data)
