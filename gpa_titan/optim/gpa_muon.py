"""GPA-Muon: GPA (Algorithm 1) over this package's Muon, with the arguments spelled out so that a
config (and the optimizer registry, which reads a class's signature) can name them.

``GPAMuon(params, ...)`` is ``GPA(params, base=Muon, mu_x=..., mu_y=..., **muon_arguments)``:
parameters hold y, z is the one extra buffer, Muon (on 2-D hidden weights; AdamW on the rest)
moves z with the gradient taken at y, and its weight decay acts on z. It works on FSDP2 shards
because ``Muon`` orthogonalises whole matrices itself (``handles_sharded_matrices``).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Sequence

from .gpa import GPA
from .muon import ADAMW_MODULES, Muon

_MUON = {name: p.default for name, p in inspect.signature(Muon.__init__).parameters.items()
         if p.default is not inspect.Parameter.empty}
_GPA = {name: p.default for name, p in inspect.signature(GPA.__init__).parameters.items()
        if p.default is not inspect.Parameter.empty}


class GPAMuon(GPA):
    """GPA over ``Muon``: the averaging of Algorithm 1 around Muon's update.

    Args:
        params: ``model.named_parameters()`` (so that ``tok_embeddings`` and ``output`` take
            AdamW), an iterable of tensors, or of param-group dicts each with ``"algorithm"``.
        lr (float, default Muon's 1e-3), weight_decay (float, default Muon's 0.1),
        momentum (float, default Muon's 0.95), nesterov (bool, default Muon's True),
        ns_steps (int, default Muon's 5), adjust_lr_fn (str, default Muon's "original"),
        adamw_lr (float, default Muon's -1: lr), adamw_weight_decay (float, default Muon's -1:
            weight_decay), betas (tuple[float, float], default (0.9, 0.95)), eps (float,
            default 1e-8): Muon's (see ``Muon``; its Newton-Schulz coefficients and epsilon stay
            torch's defaults).
        mu_x (float, default GPA's 0.9967): averaging rate of x, in [0, 1).
        mu_y (float, default GPA's 0.9, the paper's Llama value): where gradients are taken.
        implementation (str, default GPA's "foreach"): GPA's elementwise passes (see ``GPA``).
        adamw_modules (Sequence[str], keyword only, default ("tok_embeddings", "output")): Muon's
            (a setting for code, not an ``[optimizer]`` config field).
    """

    takes_named_parameters = True  # Muon splits its parameters by name

    def __init__(
        self,
        params: Iterable,
        lr: float = _MUON["lr"],
        weight_decay: float = _MUON["weight_decay"],
        momentum: float = _MUON["momentum"],
        nesterov: bool = _MUON["nesterov"],
        ns_steps: int = _MUON["ns_steps"],
        adjust_lr_fn: str = _MUON["adjust_lr_fn"],
        adamw_lr: float = _MUON["adamw_lr"],
        adamw_weight_decay: float = _MUON["adamw_weight_decay"],
        betas: tuple[float, float] = _MUON["betas"],
        eps: float = _MUON["eps"],
        mu_x: float = _GPA["mu_x"],
        mu_y: float = _GPA["mu_y"],
        implementation: str = _GPA["implementation"],
        *,
        adamw_modules: Sequence[str] = ADAMW_MODULES,
    ) -> None:
        super().__init__(
            params, base=Muon, mu_x=mu_x, mu_y=mu_y, implementation=implementation, lr=lr,
            weight_decay=weight_decay, momentum=momentum, nesterov=nesterov, ns_steps=ns_steps,
            adjust_lr_fn=adjust_lr_fn, adamw_lr=adamw_lr, adamw_weight_decay=adamw_weight_decay, betas=betas,
            eps=eps, adamw_modules=adamw_modules,
        )

    @staticmethod
    def check_arguments(lr, weight_decay, momentum, nesterov, ns_steps, adjust_lr_fn, adamw_lr, adamw_weight_decay,
                        betas, eps, mu_x, mu_y) -> None:
        """Raise ``HyperparameterError`` (naming the argument) for an argument out of range:
        Muon's checks, then GPA's."""
        Muon.check_arguments(lr, weight_decay, momentum, nesterov, ns_steps, adjust_lr_fn, adamw_lr,
                             adamw_weight_decay, betas, eps)
        GPA.check_hyperparameters(mu_x, mu_y)
