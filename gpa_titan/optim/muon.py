"""Muon for 2-D hidden weights, AdamW for every other parameter, on plain tensors and on FSDP2 DTensors.

The math is torch's own: the Newton-Schulz orthogonalisation, its coefficients and the learning
rate adjustment are called from ``torch.optim._muon`` (``_zeropower_via_newtonschulz``,
``_adjust_lr``), the defaults are read from ``torch.optim.Muon``'s signature, and the AdamW part
is ``torch.optim.adamw.adamw``. On plain tensors one step equals ``torch.optim.Muon`` on the Muon
parameters plus ``torch.optim.AdamW`` on the rest.

Which parameter takes which (``muon_param_groups``): a parameter takes Muon when it is 2-D and
no component of its name is in ``adamw_modules`` (default ``ADAMW_MODULES``, TorchTitan's Llama
names ``tok_embeddings`` and ``output``); everything else (embeddings, the output head, norm
weights, biases, any 1-D or >2-D tensor) takes AdamW. For TorchTitan's Llama:
``layers.N.attention.{wq,wk,wv,wo}.weight`` and ``layers.N.feed_forward.{w1,w2,w3}.weight`` take
Muon; ``tok_embeddings.weight``, ``output.weight``, ``norm.weight`` and the
``layers.N.*_norm.weight`` take AdamW. Without names (a plain list of tensors) only ``ndim`` can
decide, so an embedding would take Muon: pass ``model.named_parameters()``.

Sharded matrices. The momentum and Nesterov updates are elementwise and run on local shards. The
orthogonalisation needs whole matrices: for parameters sharded ``Shard(0)`` on a 1-D mesh (FSDP2,
uneven and empty shards included) every matrix has one owner rank (``assign_owners``: largest
cost first, to the least loaded rank, so each rank orthogonalises about 1/world of the work);
one ``all_to_all`` brings each owner the shards of its matrices, the owner orthogonalises them,
and a second ``all_to_all`` sends every rank its rows of the result. Compared with gathering
every matrix on every rank (one all-gather, every rank orthogonalising everything), this moves
2/world of the bytes per rank and does 1/world of the Newton-Schulz work per rank.
``communication_bytes_per_step`` gives the figures. Updates travel in bfloat16: torch's
Newton-Schulz starts with ``grad.bfloat16()`` and returns bfloat16, so this is exact.
DTensors with any other placement (tensor parallel, HSDP's 2-D mesh) take a slower but general
path: the whole update is gathered on every rank (``full_tensor()``), orthogonalised there, and
each rank keeps its shard. Replicated DTensors and plain tensors are orthogonalised locally.
No step makes a host-device synchronisation: split sizes come from shapes, not values.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import torch
import torch.distributed as dist
from torch.distributed.tensor import DTensor, Replicate, Shard
from torch.optim import _muon as torch_muon
from torch.optim.adamw import adamw as torch_adamw

from .base import local, local_grad
from .hyperparameters import HyperparameterError, check_adamw, check_integer, check_number

ADAMW_MODULES = ("tok_embeddings", "output")
ALGORITHMS = ("muon", "adamw")
# torch.optim.Muon's learning-rate adjustments by name; torch's default None is "original"
ADJUST_LR_FNS = ("original", "match_rms_adamw")
SAME_AS_MUON = -1.0  # adamw_lr / adamw_weight_decay: take Muon's lr / weight_decay (TOML has no None)
# torch's Newton-Schulz casts its input to bfloat16 first and returns bfloat16: updates travel so.
TRANSPORT_DTYPE = torch.bfloat16
_TORCH_DEFAULTS = {
    name: p.default
    for name, p in inspect.signature(torch.optim.Muon.__init__).parameters.items()
    if p.default is not inspect.Parameter.empty
}


# ---------------------------------------------------------------------- torch's Muon math
def _torch_private(name: str):
    fn = getattr(torch_muon, name, None)
    if fn is None:
        raise ImportError(
            f"torch {torch.__version__} has no torch.optim._muon.{name}, which gpa_titan.optim.muon calls "
            f"(present in torch 2.13): adapt gpa_titan/optim/muon.py to this torch's Muon"
        )
    return fn


def orthogonalize(update: torch.Tensor, ns_coefficients: Sequence[float], ns_steps: int, eps: float) -> torch.Tensor:
    """torch.optim.Muon's Newton-Schulz orthogonalisation of one whole 2-D matrix (bfloat16 out).

    Calls ``torch.optim._muon._zeropower_via_newtonschulz``. Some torch versions give it a fifth
    argument ``use_addmm`` (torch 2.13's has none and always uses addmm); it is then passed with
    ``torch.optim.Muon``'s own default for it, so the result stays torch's.

    Args:
        update (Tensor): the 2-D matrix; a bfloat16 one may be overwritten.
        ns_coefficients (tuple[float, float, float]): the quintic's (a, b, c).
        ns_steps (int): iterations.
        eps (float): floor of the norm the matrix is first divided by.
    """
    fn = _torch_private("_zeropower_via_newtonschulz")
    if _takes_use_addmm(fn):
        return fn(update, tuple(ns_coefficients), ns_steps, eps, _TORCH_DEFAULTS.get("use_addmm", False))
    return fn(update, tuple(ns_coefficients), ns_steps, eps)


@functools.cache
def _takes_use_addmm(fn) -> bool:
    return "use_addmm" in inspect.signature(fn).parameters


def adjusted_lr(lr: float, adjust_lr_fn: str, shape: Sequence[int]) -> float:
    """torch.optim.Muon's learning rate for a matrix of ``shape`` (its ``_adjust_lr``).

    Args:
        lr (float): the group's learning rate.
        adjust_lr_fn (str): "original" (sqrt(max(1, rows/cols)), torch's default, which it
            also names None), or "match_rms_adamw" (0.2 sqrt(max(rows, cols))).
        shape (Sequence[int]): the whole matrix's shape (a DTensor's global shape).
    """
    return _torch_private("_adjust_lr")(lr, adjust_lr_fn, torch.Size(shape))


# ---------------------------------------------------------------------- which parameter takes what
def uses_muon(name: str | None, param: torch.Tensor, adamw_modules: Sequence[str] = ADAMW_MODULES) -> bool:
    """Whether a parameter takes Muon: it is 2-D and no dot-separated component of its name is in
    ``adamw_modules`` (so wrappers' prefixes such as ``_orig_mod.`` do not matter).

    Args:
        name (str | None): the parameter's name (FQN); None decides by ``ndim`` alone.
        param (Tensor): the parameter.
        adamw_modules (Sequence[str], default ADAMW_MODULES): module names whose weights take AdamW.
    """
    if param.ndim != 2:
        return False
    return name is None or not set(name.split(".")) & set(adamw_modules)


def muon_param_groups(params: Iterable, adamw_modules: Sequence[str] = ADAMW_MODULES) -> list[dict]:
    """Two param groups, ``{"algorithm": "muon", ...}`` and ``{"algorithm": "adamw", ...}`` (an
    empty one is left out), split by ``uses_muon``; names are kept as ``param_names``.

    Args:
        params: ``model.named_parameters()`` (recommended) or an iterable of tensors (then
            every 2-D tensor takes Muon).
        adamw_modules (Sequence[str], default ADAMW_MODULES): module names whose weights take AdamW.
    """
    split: dict[str, list] = {"muon": [], "adamw": []}
    for item in params:
        name, param = item if isinstance(item, tuple) else (None, item)
        split["muon" if uses_muon(name, param, adamw_modules) else "adamw"].append(item)
    return [{"params": items, "algorithm": algorithm} for algorithm, items in split.items() if items]


# ---------------------------------------------------------------------- distribution of sharded matrices
def assign_owners(shapes: Sequence[Sequence[int]], world_size: int) -> list[int]:
    """The rank that orthogonalises each matrix: largest Newton-Schulz cost
    (min(m, n)^2 max(m, n)) first, each to the least loaded rank (ties: lowest rank). Every rank
    computes the same answer from the shapes alone.

    Args:
        shapes (Sequence[Sequence[int]]): the matrices' global shapes, in step order.
        world_size (int): ranks in the mesh.
    """
    load = [0] * world_size
    owners = [0] * len(shapes)
    order = sorted(range(len(shapes)), key=lambda i: -min(shapes[i]) ** 2 * max(shapes[i]))
    for i in order:
        owner = min(range(world_size), key=lambda r: (load[r], r))
        owners[i] = owner
        load[owner] += min(shapes[i]) ** 2 * max(shapes[i])
    return owners


def shard_rows(rows: int, world_size: int) -> list[int]:
    """Rows of each rank's ``Shard(0)`` piece of a ``rows``-row matrix (torch.chunk's split, as
    FSDP2 and DTensor use: ceil(rows/world) each, the last ones shorter or empty).

    Args:
        rows (int): the matrix's rows.
        world_size (int): ranks in the mesh.
    """
    chunk = -(-rows // world_size)
    return [max(0, min(chunk, rows - r * chunk)) for r in range(world_size)]


class CommunicationBytes(NamedTuple):
    """Bytes one Muon step moves between ranks for its sharded matrices (to other ranks only).

    Args:
        sent (tuple[int, ...]): bytes each rank sends, both ``all_to_all``s together.
        received (tuple[int, ...]): bytes each rank receives.
        all_gather_received (tuple[int, ...]): what each rank would receive if every matrix were
            instead all-gathered on every rank, for comparison.
    """

    sent: tuple[int, ...]
    received: tuple[int, ...]
    all_gather_received: tuple[int, ...]

    @property
    def total(self) -> int:
        return sum(self.sent)


def communication_bytes_per_step(
    shapes: Sequence[Sequence[int]], world_size: int, bytes_per_element: int = TRANSPORT_DTYPE.itemsize
) -> CommunicationBytes:
    """The bytes per step of the two ``all_to_all``s that ``Muon`` issues for matrices of these
    global shapes, sharded ``Shard(0)`` over ``world_size`` ranks (FSDP2). AdamW parameters and
    the momentum update move nothing (elementwise on shards).

    Args:
        shapes (Sequence[Sequence[int]]): the Muon matrices' global shapes, in step order.
        world_size (int): ranks in the mesh.
        bytes_per_element (int, default 2): bytes of the transport dtype (bfloat16).
    """
    sent, received, gathered = [0] * world_size, [0] * world_size, [0] * world_size
    for (rows, cols), owner in zip(shapes, assign_owners(shapes, world_size), strict=True):
        for rank, n in enumerate(shard_rows(rows, world_size)):
            gathered[rank] += (rows - n) * cols * bytes_per_element
            if rank != owner:  # its shard goes to the owner and its rows of the result come back
                sent[rank] += n * cols * bytes_per_element
                received[owner] += n * cols * bytes_per_element
                sent[owner] += n * cols * bytes_per_element
                received[rank] += n * cols * bytes_per_element
    return CommunicationBytes(tuple(sent), tuple(received), tuple(gathered))


def _is_fsdp_sharded(p: torch.Tensor) -> bool:
    return isinstance(p, DTensor) and p.device_mesh.ndim == 1 and tuple(p.placements) == (Shard(0),)


def _is_replicated(p: torch.Tensor) -> bool:
    return not isinstance(p, DTensor) or all(isinstance(pl, Replicate) for pl in p.placements)


class _Matrix(NamedTuple):
    param: torch.Tensor  # the parameter (a DTensor's global shape is its shape)
    update: torch.Tensor  # the local shard of the momentum update, before orthogonalisation


def _flat(pieces: list[torch.Tensor], device: torch.device) -> torch.Tensor:
    return torch.cat(pieces) if pieces else torch.empty(0, dtype=TRANSPORT_DTYPE, device=device)


def _orthogonalize_sharded(matrices: list[_Matrix], group_hp: list[dict]) -> list[torch.Tensor]:
    """Local shards of the orthogonalised updates of FSDP2-sharded matrices on one mesh, in order.

    Two ``all_to_all_single`` calls: shards to owners, owners' results back to every rank.
    """
    mesh = matrices[0].param.device_mesh
    pg, world, rank = mesh.get_group(), mesh.size(), mesh.get_local_rank()
    shapes = [tuple(m.param.shape) for m in matrices]
    owners = assign_owners(shapes, world)
    rows = [shard_rows(shape[0], world) for shape in shapes]
    for m, r in zip(matrices, rows, strict=True):
        if m.update.shape[0] != r[rank]:
            raise RuntimeError(
                f"Muon: a Shard(0) parameter of shape {tuple(m.param.shape)} holds {m.update.shape[0]} rows on rank "
                f"{rank}, not torch.chunk's {r[rank]}: this sharding is not FSDP2's; shard with fully_shard"
            )
    mine = [i for i in range(len(matrices)) if owners[i] == rank]
    # 1. every rank sends its shard of matrix i to owners[i], grouped by destination rank
    send = [[matrices[i].update.to(TRANSPORT_DTYPE).reshape(-1) for i in range(len(matrices)) if owners[i] == dst]
            for dst in range(world)]
    in_splits = [sum(t.numel() for t in parts) for parts in send]
    out_splits = [sum(rows[i][src] * shapes[i][1] for i in mine) for src in range(world)]
    device = matrices[0].update.device
    send_flat = _flat([t for parts in send for t in parts], device)
    recv_flat = torch.empty(sum(out_splits), dtype=TRANSPORT_DTYPE, device=device)
    dist.all_to_all_single(recv_flat, send_flat, out_splits, in_splits, group=pg)
    # 2. each owner assembles and orthogonalises its matrices
    pieces: dict[int, list[torch.Tensor]] = {i: [] for i in mine}
    for src, chunk in enumerate(recv_flat.split(out_splits)):
        for i, piece in zip(mine, chunk.split([rows[i][src] * shapes[i][1] for i in mine]), strict=True):
            pieces[i].append(piece.view(rows[i][src], shapes[i][1]))
    results = {}
    for i in mine:
        hp = group_hp[i]
        results[i] = orthogonalize(torch.cat(pieces[i]), hp["ns_coefficients"], hp["ns_steps"], hp["eps"])
    # 3. owners send every rank its rows of each result
    back = [[results[i].to(TRANSPORT_DTYPE).split(rows[i])[dst].reshape(-1) for i in mine] for dst in range(world)]
    send_flat = _flat([t for parts in back for t in parts], device)
    recv_flat = torch.empty(sum(in_splits), dtype=TRANSPORT_DTYPE, device=device)
    dist.all_to_all_single(recv_flat, send_flat, in_splits, out_splits, group=pg)
    local_results: list[torch.Tensor | None] = [None] * len(matrices)
    for dst, chunk in enumerate(recv_flat.split(in_splits)):
        theirs = [i for i in range(len(matrices)) if owners[i] == dst]
        for i, piece in zip(theirs, chunk.split([rows[i][rank] * shapes[i][1] for i in theirs]), strict=True):
            local_results[i] = piece.view(rows[i][rank], shapes[i][1])
    return local_results


def _orthogonalize_gathered(m: _Matrix, hp: dict) -> torch.Tensor:
    """Any other DTensor placement: gather the whole update on every rank, orthogonalise, keep the shard."""
    p = m.param
    whole = DTensor.from_local(m.update, p.device_mesh, p.placements, shape=p.shape, stride=p.stride()).full_tensor()
    ortho = orthogonalize(whole, hp["ns_coefficients"], hp["ns_steps"], hp["eps"])
    replicated = DTensor.from_local(ortho, p.device_mesh, [Replicate()] * p.device_mesh.ndim, run_check=False)
    return replicated.redistribute(p.device_mesh, p.placements).to_local()


# ---------------------------------------------------------------------- the optimizer
class Muon(torch.optim.Optimizer):
    """Muon (torch.optim.Muon's update) on 2-D hidden weights and AdamW (torch.optim.AdamW's) on
    every other parameter, on plain tensors and on FSDP2 DTensors (see the module docstring for
    the split and for how sharded matrices are orthogonalised).

    Every param group has ``"algorithm"``: ``"muon"`` or ``"adamw"``. Parameters given as
    tensors or ``(name, tensor)`` pairs are split by ``muon_param_groups`` (by ``ndim`` and by
    name: pass ``model.named_parameters()`` so that ``tok_embeddings`` and ``output`` take
    AdamW); group dicts must carry ``"algorithm"`` (build them with ``muon_param_groups``). A
    ``"muon"`` group holds 2-D parameters only. State, created eagerly: ``momentum_buffer`` for
    Muon parameters; ``step``, ``exp_avg``, ``exp_avg_sq`` for AdamW ones (torch's names), each
    placed like its parameter. Parameters are updated in place from their ``.grad``.

    Muon update of a matrix W with gradient G: ``B <- momentum B + (1 - momentum) G``;
    ``U = G + momentum (B - G)`` with Nesterov, else ``B``; ``W <- (1 - lr wd) W - lr' NS(U)``
    with ``lr' = adjusted_lr(lr, adjust_lr_fn, W.shape)``.

    Args:
        params: ``model.named_parameters()``, an iterable of tensors, or of param-group dicts
            each with ``"algorithm"``.
        lr (float, default torch.optim.Muon's 1e-3): Muon's learning rate (before adjustment).
        weight_decay (float, default torch.optim.Muon's 0.1): Muon's decoupled weight decay.
        momentum (float, default torch.optim.Muon's 0.95): Muon's momentum, in [0, 1).
        nesterov (bool, default torch.optim.Muon's True): Nesterov momentum.
        ns_steps (int, default torch.optim.Muon's 5): Newton-Schulz iterations, in [1, 100).
        adjust_lr_fn (str, default "original", which torch.optim.Muon's default None means):
            Muon's lr adjustment: "original" (sqrt(max(1, rows/cols)), Keller Jordan's), or
            "match_rms_adamw" (0.2 sqrt(max(rows, cols)), Moonshot's, under which one lr suits
            Muon and AdamW).
        adamw_lr (float, default SAME_AS_MUON = -1): the AdamW groups' learning rate, >= 0;
            -1: ``lr`` (a sentinel rather than None, so that a TOML config can hold it).
        adamw_weight_decay (float, default SAME_AS_MUON = -1): the AdamW groups' weight decay,
            >= 0; -1: ``weight_decay``.
        betas (tuple[float, float], default (0.9, 0.95)): AdamW's moment decay rates.
        eps (float, default 1e-8): AdamW's denominator epsilon.
        ns_coefficients (tuple[float, float, float], keyword only, default torch.optim.Muon's
            (3.4445, -4.775, 2.0315)): the Newton-Schulz quintic's (a, b, c).
        ns_eps (float, keyword only, default torch.optim.Muon's 1e-7): floor of the norm the update
            is divided by before Newton-Schulz (torch.optim.Muon's ``eps``; stored as the group's
            ``"ns_eps"``).
        adamw_modules (Sequence[str], keyword only, default ADAMW_MODULES = ("tok_embeddings",
            "output")): module names whose 2-D weights take AdamW when parameters come with names.

    The keyword-only arguments are settings for code, not ``[optimizer]`` config fields (the
    optimizer registry reads the other arguments as the config's fields).
    """

    handles_sharded_matrices = True  # orthogonalises whole matrices of FSDP2-sharded parameters itself
    takes_named_parameters = True  # splits Muon from AdamW parameters by name: build it over named_parameters()
    zero_step_creates_state = True  # a zero-gradient step at lr = weight_decay = 0 leaves fresh state (GPA)
    HYPERPARAMETERS = {
        "muon": ("lr", "weight_decay", "momentum", "nesterov", "ns_coefficients", "ns_eps", "ns_steps", "adjust_lr_fn"),
        "adamw": ("lr", "betas", "eps", "weight_decay"),
    }

    def __init__(
        self,
        params: Iterable,
        lr: float = _TORCH_DEFAULTS["lr"],
        weight_decay: float = _TORCH_DEFAULTS["weight_decay"],
        momentum: float = _TORCH_DEFAULTS["momentum"],
        nesterov: bool = _TORCH_DEFAULTS["nesterov"],
        ns_steps: int = _TORCH_DEFAULTS["ns_steps"],
        adjust_lr_fn: str = "original",
        adamw_lr: float = SAME_AS_MUON,
        adamw_weight_decay: float = SAME_AS_MUON,
        betas: tuple[float, float] = (0.9, 0.95),
        eps: float = 1e-8,
        *,
        ns_coefficients: tuple[float, float, float] = _TORCH_DEFAULTS["ns_coefficients"],
        ns_eps: float = _TORCH_DEFAULTS["eps"],
        adamw_modules: Sequence[str] = ADAMW_MODULES,
    ) -> None:
        _torch_private("_zeropower_via_newtonschulz")
        _torch_private("_adjust_lr")
        self.check_adamw_overrides(adamw_lr, adamw_weight_decay)
        self._adamw_defaults = {
            "lr": lr if adamw_lr == SAME_AS_MUON else adamw_lr,
            "weight_decay": weight_decay if adamw_weight_decay == SAME_AS_MUON else adamw_weight_decay,
        }
        params = list(params)
        if params and not isinstance(params[0], dict):
            params = muon_param_groups(params, adamw_modules)
        defaults = dict(
            lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov,
            ns_coefficients=tuple(ns_coefficients), ns_eps=ns_eps, ns_steps=ns_steps, adjust_lr_fn=adjust_lr_fn,
            betas=tuple(betas), eps=eps,
        )
        super().__init__(params, defaults)

    # ------------------------------------------------------------------ construction
    @staticmethod
    def check_adamw_overrides(adamw_lr, adamw_weight_decay) -> None:
        """Raise ``HyperparameterError`` unless each is -1 (``SAME_AS_MUON``) or a number >= 0."""
        for argument, value in (("adamw_lr", adamw_lr), ("adamw_weight_decay", adamw_weight_decay)):
            if value != SAME_AS_MUON or isinstance(value, bool):
                check_number(argument, value, 0.0, math.inf, high_inclusive=False,
                             note=f"or {SAME_AS_MUON:g} for the same as Muon's {argument.removeprefix('adamw_')}")

    @classmethod
    def check_arguments(cls, lr, weight_decay, momentum, nesterov, ns_steps, adjust_lr_fn, adamw_lr,
                        adamw_weight_decay, betas, eps) -> None:
        """Raise ``HyperparameterError`` (naming the argument) for a constructor argument out of
        range: the checks of both groups, with the AdamW group's lr and weight decay resolved."""
        cls.check_adamw_overrides(adamw_lr, adamw_weight_decay)
        cls.check_hyperparameters(
            "muon", lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov,
            ns_coefficients=_TORCH_DEFAULTS["ns_coefficients"], ns_eps=_TORCH_DEFAULTS["eps"], ns_steps=ns_steps,
            adjust_lr_fn=adjust_lr_fn,
        )
        check_adamw(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)

    @staticmethod
    def check_hyperparameters(algorithm: str, **values) -> None:
        """Raise ``HyperparameterError`` for a value out of range (``values``: a group's
        ``HYPERPARAMETERS[algorithm]``)."""
        if algorithm == "adamw":
            check_adamw(**values)
            return
        check_number("lr", values["lr"], 0.0, math.inf, high_inclusive=False)
        check_number("weight_decay", values["weight_decay"], 0.0, math.inf, high_inclusive=False)
        check_number("momentum", values["momentum"], 0.0, 1.0, high_inclusive=False)
        if not isinstance(values["nesterov"], bool):
            raise HyperparameterError("nesterov", values["nesterov"], "True or False")
        coefficients = values["ns_coefficients"]
        if not isinstance(coefficients, (tuple, list)) or len(coefficients) != 3:
            raise HyperparameterError("ns_coefficients", coefficients, "three numbers (a, b, c)")
        for i, c in enumerate(coefficients):
            check_number(f"ns_coefficients[{i}]", c, -math.inf, math.inf, low_inclusive=False, high_inclusive=False)
        check_number("ns_eps", values["ns_eps"], 0.0, math.inf, low_inclusive=False, high_inclusive=False)
        check_integer("ns_steps", values["ns_steps"], 1)
        if values["ns_steps"] >= 100:
            raise HyperparameterError("ns_steps", values["ns_steps"], "below 100 (torch.optim.Muon's limit)")
        if values["adjust_lr_fn"] not in ADJUST_LR_FNS:
            raise HyperparameterError("adjust_lr_fn", values["adjust_lr_fn"], f"one of {list(ADJUST_LR_FNS)}")

    def add_param_group(self, param_group: dict) -> None:
        algorithm = param_group.get("algorithm")
        if algorithm not in ALGORITHMS:
            raise ValueError(
                f"Muon: a param group has algorithm={algorithm!r}; every group needs \"algorithm\": \"muon\" or "
                f"\"adamw\". Build the groups with gpa_titan.optim.muon.muon_param_groups(model.named_parameters()), "
                f"or pass the parameters themselves"
            )
        if algorithm == "adamw":
            for key, value in self._adamw_defaults.items():
                param_group.setdefault(key, value)
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        try:
            self.check_hyperparameters(algorithm, **{k: group[k] for k in self.HYPERPARAMETERS[algorithm]})
            if algorithm == "muon":
                names = group.get("param_names", [None] * len(group["params"]))
                for name, p in zip(names, group["params"], strict=True):
                    if p.ndim != 2:
                        raise ValueError(
                            f"Muon: parameter {name or ''} of shape {tuple(p.shape)} is in an \"algorithm\": "
                            f"\"muon\" group, which takes 2-D matrices only; put it in an \"adamw\" group "
                            f"(muon_param_groups does)"
                        )
        except ValueError:
            self.param_groups.pop()
            raise
        group["betas"] = tuple(group["betas"])
        group["ns_coefficients"] = tuple(group["ns_coefficients"])
        with torch.no_grad():
            self._init_group(group)

    def _init_group(self, group: dict) -> None:
        for p in group["params"]:
            state = self.state[p]
            if group["algorithm"] == "muon":
                state.setdefault("momentum_buffer", torch.zeros_like(p, memory_format=torch.preserve_format))
            elif "step" not in state:
                state["step"] = torch.tensor(0.0, dtype=torch.float32)
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        for group in self.param_groups:
            group["betas"] = tuple(group["betas"])
            group["ns_coefficients"] = tuple(group["ns_coefficients"])

    # ------------------------------------------------------------------ step
    @torch.no_grad()
    def step(self, closure=None):
        """One step of every group; returns the closure's loss (or None)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        matrices: list[_Matrix] = []
        matrix_groups: list[dict] = []
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if any(p.grad.is_sparse for p in params):
                raise RuntimeError("Muon does not support sparse gradients")
            if not params:
                continue
            if any(not self.state[p] for p in params):  # state replaced from outside (GPA shares its own)
                self._init_group(group)
            if group["algorithm"] == "adamw":
                self._adamw_step(group, params)
            else:
                for m in self._momentum_updates(group, params):
                    matrices.append(m)
                    matrix_groups.append(group)
        self._apply_muon(matrices, matrix_groups)
        return loss

    def _adamw_step(self, group: dict, params: list[torch.Tensor]) -> None:
        states = [self.state[p] for p in params]
        torch_adamw(
            [local(p) for p in params], [local_grad(p) for p in params],
            [local(s["exp_avg"]) for s in states], [local(s["exp_avg_sq"]) for s in states], [],
            [s["step"] for s in states],
            amsgrad=False, beta1=group["betas"][0], beta2=group["betas"][1], lr=group["lr"],
            weight_decay=group["weight_decay"], eps=group["eps"], maximize=False,
        )

    def _momentum_updates(self, group: dict, params: list[torch.Tensor]) -> list[_Matrix]:
        """``buf.lerp_(grad, 1 - momentum)``; the update is ``grad.lerp(buf, momentum)`` with
        Nesterov, else the buffer (as torch.optim.Muon), on local shards."""
        grads = [local_grad(p) for p in params]
        bufs = [local(self.state[p]["momentum_buffer"]) for p in params]
        torch._foreach_lerp_(bufs, grads, 1 - group["momentum"])
        updates = torch._foreach_lerp(grads, bufs, group["momentum"]) if group["nesterov"] else bufs
        return [_Matrix(p, u) for p, u in zip(params, updates, strict=True)]

    def _apply_muon(self, matrices: list[_Matrix], groups: list[dict]) -> None:
        """Orthogonalise every update (locally, by owners over the mesh, or gathered) and apply it."""
        hps = [{"ns_coefficients": g["ns_coefficients"], "ns_steps": g["ns_steps"], "eps": g["ns_eps"]} for g in groups]
        results: list[torch.Tensor | None] = [None] * len(matrices)
        by_mesh: dict[Any, list[int]] = {}
        for i, m in enumerate(matrices):
            if _is_fsdp_sharded(m.param) and m.param.device_mesh.size() > 1:
                by_mesh.setdefault(m.param.device_mesh, []).append(i)
            elif _is_replicated(m.param) or _is_fsdp_sharded(m.param):
                # torch's Newton-Schulz overwrites a bfloat16 input: never hand it the momentum buffer
                update = m.update.clone() if m.update.dtype == TRANSPORT_DTYPE else m.update
                results[i] = orthogonalize(update, **hps[i])
            else:
                results[i] = _orthogonalize_gathered(m, hps[i])
        for indices in by_mesh.values():
            sharded = _orthogonalize_sharded([matrices[i] for i in indices], [hps[i] for i in indices])
            for i, r in zip(indices, sharded, strict=True):
                results[i] = r
        for m, group, ortho in zip(matrices, groups, results, strict=True):
            lr = group["lr"]
            weight = local(m.param)
            weight.mul_(1 - lr * group["weight_decay"])
            weight.add_(ortho, alpha=-adjusted_lr(lr, group["adjust_lr_fn"], m.param.shape))
