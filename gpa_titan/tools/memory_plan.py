"""Per-GPU memory plan of a training config: static memory measured, activations estimated.

``python scripts/memory_plan.py`` prints one row per config; ``--search`` prints, per config,
the fewest-recomputation activation checkpointing that fits and the largest local batch for it.

**Measured** (``measure_static``), from the shard sizes of the real sharded model, never by
dividing by hand: the config is parsed by TorchTitan's ``ConfigManager``, the model is built on
the meta device exactly as TorchTitan's Trainer builds it (flavor updated from the config,
default dtype ``[training] dtype``), and the TrainSpec's own ``parallelize_fn`` (TorchTitan's
``parallelize_llama``: activation checkpointing, per-block ``torch.compile`` wrapping,
``fully_shard`` per transformer block, on the embedding, on [norm, output] and on the root)
runs over TorchTitan's ``ParallelDims`` meshes under torch's fake process group
(``FakeStore``, backend ``"fake"``, rank 0 of the config's GPU count, replicate degree = nodes
as ``slurm/train.sbatch`` sets it). Then:

- params: FSDP2's padded local shards (``FSDPParam.padded_sharded_param_size``, in the
  parameters' dtype, fp32) plus the unsharded buffers (RoPE's ``freqs_cis``);
- grads: the same padded shards in the FSDP units' reduce dtype (``mixed_precision_reduce``,
  fp32 in TorchTitan 0.2.2: the reduce-scatter output that the sharded gradients view);
- optimizer state: the optimizer the config names is built by the TrainSpec's
  ``build_optimizers_fn`` (the registry, ``gpa_titan/optim/registry.py``) on the sharded model and
  every tensor in its state is counted at its local size. GPA-AdamW and DiLoCo-AdamW create
  their state at construction. torch's AdamW creates it lazily in ``step()``, and its fused
  kernel has no meta implementation, so the plan calls AdamW's own lazy initialisation
  (``Adam._init_group``) with the gradients set, with the fused-device check off (the state
  tensors are the same: ``exp_avg``, ``exp_avg_sq`` and a scalar ``step`` per parameter, the
  latter counted wherever it lives);
- the FSDP units (unsharded padded sizes, compute dtype, whether TorchTitan reshards them
  after forward), which the activation estimate below uses for its buffers.

Rank 0 is measured: its shards are the largest (``torch.chunk`` gives the first ranks the
rounded-up rows) and FSDP2 pads every rank's storage to that size. Nothing is allocated
(meta tensors), so 8B on 64 GPUs takes under a second after the imports.

**Estimated** (``estimate_activations``): what the forward/backward adds at its peak, from
the model shape, ``local_batch_size``, ``seq_len`` and ``[activation_checkpoint]``. Per token
and transformer layer, with ``c`` bytes per activation (2 for bf16 compute copies), d = dim,
k = n_kv_heads x head_dim, f = FFN hidden size, h = heads, the tensors autograd keeps, counted
as in Korthikanti et al. 2022 (*Reducing Activation Recomputation in Large Transformer Models*,
Sec. 4.1: ``sbh(34 + 5as/h)`` for GPT) but for TorchTitan's Llama: no dropout (no masks),
flash attention (no ``s^2`` term: q, k, v, the output and an fp32 log-sum-exp per head),
GQA (k and v are k wide), SwiGLU (w1 and w3 outputs and their product, each f wide) and
RMSNorm (input kept, fp32 rstd):

- ``none``: ``c (6d + 2k + 3f) + 8 + 4h`` (block input, attention-norm output, q, k, v,
  attention output, residual, FFN-norm output, three f-wide tensors; two rstd; lse);
- ``selective`` with ``selective_ac_option = "op"``: TorchTitan's policy saves the outputs of
  every other ``mm`` (wq, wv, w1, w2 in forward order) and of attention, plus the block input;
  w2's output is not needed by backward, so the compiled block drops it:
  ``c (3d + k + f) + 4h``. An integer option ``n`` checkpoints every n-th block fully;
- ``full``: the block input only, ``c d``.

These are the configs' compiled blocks (``[compile]`` on, per-block ``torch.compile``): a
TorchTitan ``TransformerBlock`` (d 512, 8 heads, 2 kv heads, f 1792, bf16) compiled by inductor
on CPU saved exactly ``c (6d + 2k + 3f) + 8 + 4h`` = 17,448 B per token without AC, 6,944 with
TorchTitan's op policy (its CPU attention op added to the save list) and 1,034 with full AC
(``torch.autograd.graph.saved_tensors_hooks``). Uncompiled blocks keep more (the same block in
eager mode: 27,176 B: SiLU's output, RMSNorm's fp32 intermediates on CPU), which the plan does
not model: with ``[compile] enable = false``, leave more headroom.

Outside the blocks: the final norm's input and output and the token ids (``2cd + 4 + 8``).
During a checkpointed block's backward, one block's recomputed activations exist at once
(the ``none`` count minus what the mode keeps).

On top of the kept activations, the largest of three moments of the backward:

- the loss: the logits are ``b x s x vocab``. Eagerly, cross-entropy's log-softmax keeps its
  fp32 output and its backward holds that, its incoming gradient and its result: 3 fp32
  copies (12 B per logit). With ``[compile]`` covering ``"loss"`` (TorchTitan's default when
  compile is on, as in the configs) the compiled loss keeps the bf16 logits (and two fp32
  values per row) and its backward writes one bf16 gradient: 4 B per logit (checked with
  inductor on CPU: saved tensors and the buffers of the generated backward). Plus the
  all-gathered units TorchTitan keeps unsharded after forward ([norm, output]);
- the output projection's backward: the compute-dtype logit gradient, the kept units'
  all-gathered weights, their unsharded gradients and the fp32 reduce-scatter input, and
  the next block prefetched;
- a block's backward: its recomputed activations, two blocks all-gathered (current and
  prefetched), its unsharded gradients and fp32 reduce-scatter input.

Not modelled: gradients of activations beyond these (a few ``b s d`` tensors), allocator
fragmentation (the headroom is for that), CUDA context and NCCL buffers (about 1 GiB that
``torch.cuda.memory_allocated`` does not see), the optimizer step's temporaries (one tensor
at a time in DiLoCo's outer step; the step runs after backward, below the activation peak)
and validation (forward only, same local batch). No GPU was available to this work: the
activation figures are estimates; compare them with the ``memory`` TorchTitan logs at step 1.

No global state is left behind by ``measure_configs`` (which the script and the tests use):
it measures in one child process. ``measure_static`` itself runs in the calling process,
creates the fake process group and destroys it, but TorchTitan's ``apply_ac`` switches off
dynamo's LRU cache for the rest of that process.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import json
import math
import os
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .paper_sizes import GPUS_PER_NODE, NODES

GIB = 2**30
DEFAULT_GPU_MEMORY_GIB = 80.0  # H100 80GB
DEFAULT_HEADROOM = 0.10  # fraction of GPU memory left free by a choice that "fits"
AC_MODES = ("none", "selective", "full")  # fewest recomputations first
PAPER_CONFIG_GLOB = "llama_*.toml"  # the paper's configs in configs/ (debug_cpu.toml is the CPU demo)

LOSS_BYTES_EAGER = 12  # per logit: log-softmax output, its gradient and its input's gradient, fp32
LOSS_BYTES_COMPILED = 4  # per logit: the bf16 logits the compiled loss keeps and its bf16 gradient


# ---------------------------------------------------------------------- what is measured
@dataclass(frozen=True)
class ModelShape:
    """The shape the activation estimate needs, read from the built model.

    Args:
        n_layers (int): transformer blocks.
        dim (int): model width d.
        n_heads (int): attention heads.
        kv_dim (int): width of k and v (n_kv_heads x head_dim).
        ffn_dim (int): SwiGLU hidden size.
        vocab (int): vocabulary size (logits per token).
    """

    n_layers: int
    dim: int
    n_heads: int
    kv_dim: int
    ffn_dim: int
    vocab: int


@dataclass(frozen=True)
class FSDPUnit:
    """One FSDP2 parameter group (one ``fully_shard`` call) of the sharded model.

    Args:
        name (str): the module name(s) it covers (``layers.0``, ``norm+output``).
        numel (int): elements when all-gathered (padded: local padded shard x shard degree).
        compute_bytes (int): bytes per element of the all-gathered copy (the ``param_dtype``).
        reduce_bytes (int): bytes per element of the reduce-scatter (the ``reduce_dtype``).
        reshard_after_forward (bool): False for units TorchTitan keeps unsharded from the end
            of forward to their backward.
        is_block (bool): a transformer block.
    """

    name: str
    numel: int
    compute_bytes: int
    reduce_bytes: int
    reshard_after_forward: bool
    is_block: bool


@dataclass(frozen=True)
class StaticMemory:
    """Per-GPU memory that does not depend on the batch, measured on the sharded meta model
    (``measure_static``), plus the config's batch and checkpointing choice. Bytes throughout.

    Args:
        config (str): the config file.
        flavor (str): ``[model] flavor``.
        optimizer (str): ``[optimizer] name``.
        nodes (int): nodes of ``gpus_per_node`` GPUs.
        gpus (int): world size.
        dp_shard (int): FSDP shard degree (within a node for the paper configs).
        dp_replicate (int): HSDP replicate degree (the node count, as ``slurm/train.sbatch`` sets).
        global_batch (int): ``[training] global_batch_size`` (-1: local x data-parallel degree).
        local_batch (int): ``[training] local_batch_size``.
        seq_len (int): ``[training] seq_len``.
        ac_mode (str): ``[activation_checkpoint] mode``.
        ac_option (str): ``[activation_checkpoint] selective_ac_option``.
        compiled_loss (bool): ``[compile]`` is on and covers the loss.
        shape (ModelShape): the model's shape.
        total_params (int): parameters of the whole model.
        local_params (int): parameter elements in rank 0's shards (unpadded).
        param_bytes (int): padded parameter shards plus unsharded buffers.
        grad_bytes (int): padded gradient shards in the reduce dtype.
        optimizer_bytes (int): every tensor of the optimizer's state, local sizes.
        optimizer_tensors (int): how many state tensors that is.
        units (tuple[FSDPUnit, ...]): the FSDP units.
    """

    config: str
    flavor: str
    optimizer: str
    nodes: int
    gpus: int
    dp_shard: int
    dp_replicate: int
    global_batch: int
    local_batch: int
    seq_len: int
    ac_mode: str
    ac_option: str
    compiled_loss: bool
    shape: ModelShape
    total_params: int
    local_params: int
    param_bytes: int
    grad_bytes: int
    optimizer_bytes: int
    optimizer_tensors: int
    units: tuple[FSDPUnit, ...]

    @property
    def name(self) -> str:
        """The config's file name without ``.toml``."""
        return os.path.splitext(os.path.basename(self.config))[0]

    @property
    def dp_degree(self) -> int:
        return self.dp_shard * self.dp_replicate

    @property
    def static_bytes(self) -> int:
        return self.param_bytes + self.grad_bytes + self.optimizer_bytes

    @classmethod
    def from_dict(cls, d: dict) -> StaticMemory:
        d = dict(d, shape=ModelShape(**d["shape"]), units=tuple(FSDPUnit(**u) for u in d["units"]))
        return cls(**d)


def _local(t):
    """The tensor this rank holds: a DTensor's local shard, a plain tensor itself."""
    from torch.distributed.tensor import DTensor

    return t.to_local() if isinstance(t, DTensor) else t


def _materialize_lazy_state(optimizer) -> None:
    """Create torch Adam/AdamW's lazily created state without stepping (see the module
    docstring); other optimizers must have created theirs at construction."""
    import torch

    params = [p for group in optimizer.param_groups for p in group["params"]]
    if all(p in optimizer.state for p in params):
        return
    if not isinstance(optimizer, torch.optim.Adam):
        raise NotImplementedError(f"{type(optimizer).__name__} creates its state lazily; the plan cannot measure it")
    for p in params:
        p.grad = p.detach()  # a reference: only p.grad's presence matters to _init_group
    for group in optimizer.param_groups:
        optimizer._init_group({**group, "fused": False}, [], [], [], [], [], [])
    for p in params:
        p.grad = None


def _param_groups(model) -> list:
    """The model's FSDP2 parameter groups, each once (a group can span several modules)."""
    from torch.distributed.fsdp import FSDPModule

    groups = {}
    for module in model.modules():
        if isinstance(module, FSDPModule):
            group = module._get_fsdp_state()._fsdp_param_group
            if group is not None:
                groups[id(group)] = group
    return list(groups.values())


def _fsdp_units(model) -> list[FSDPUnit]:
    names = {id(m): n for n, m in model.named_modules()}
    blocks = {id(m) for m in model.layers.children()}
    units = []
    for group in _param_groups(model):
        shard = group.mesh_info.shard_mesh_size
        first = group.fsdp_params[0]
        compute = group.mp_policy.param_dtype or first.sharded_param.dtype
        reduce = group.mp_policy.reduce_dtype or compute
        units.append(
            FSDPUnit(
                name="+".join(names[id(m)] for m in group.modules),
                numel=sum(p.padded_sharded_param_size.numel() for p in group.fsdp_params) * shard,
                compute_bytes=compute.itemsize,
                reduce_bytes=reduce.itemsize,
                reshard_after_forward=group.post_forward_mesh_info is not None,
                is_block=any(id(m) in blocks for m in group.modules),
            )
        )
    return units


@contextlib.contextmanager
def _fake_process_group(world_size: int):
    import torch.distributed as dist
    from torch.testing._internal.distributed.fake_pg import FakeStore  # registers the "fake" backend

    if dist.is_initialized():
        raise RuntimeError("measure_static needs a process without a default process group")
    dist.init_process_group("fake", store=FakeStore(), rank=0, world_size=world_size)
    try:
        yield
    finally:
        dist.destroy_process_group()


def measure_static(config_file: str, nodes: int | None = None, gpus_per_node: int = GPUS_PER_NODE) -> StaticMemory:
    """Measure a config's per-GPU static memory on the meta device under a fake process group.

    Runs in this process (use ``measure_configs`` to leave no state behind, see the module
    docstring); takes about a second after TorchTitan is imported.

    Args:
        config_file (str): a TOML config (parsed by TorchTitan's ConfigManager).
        nodes (int | None): nodes to plan for; None: ``NODES[flavor]``, else an error.
        gpus_per_node (int): GPUs per node (default 8). The replicate degree is ``nodes``
            (HSDP across nodes, as ``slurm/train.sbatch`` sets it), the shard degree the rest.

    Returns:
        StaticMemory: the measured sizes and the config's batch and checkpointing choice.
    """
    import importlib
    from unittest import mock

    import torch
    from torchtitan.config import TORCH_DTYPE_MAP, ConfigManager
    from torchtitan.distributed import ParallelDims
    from torchtitan.protocols.train_spec import get_train_spec
    from torchtitan.tools.utils import set_default_dtype

    cfg = ConfigManager().parse_args(["--job.config_file", config_file])
    if cfg.experimental.custom_import:
        importlib.import_module(cfg.experimental.custom_import)
    flavor = cfg.model.flavor
    if nodes is None:
        if flavor not in NODES:
            raise ValueError(f"{config_file}: no GPU count is known for flavor {flavor!r}; pass nodes (--nodes)")
        nodes = NODES[flavor]
    p = cfg.parallelism
    if (p.tensor_parallel_degree, p.context_parallel_degree, p.pipeline_parallel_degree) != (1, 1, 1):
        raise ValueError(f"{config_file}: the plan models FSDP/HSDP only (no TP, CP or PP)")
    spec = get_train_spec(cfg.model.name)
    model_args = copy.deepcopy(spec.model_args[flavor])  # the TrainSpec's table stays as it is
    model_args.update_from_config(cfg)
    gpus = nodes * gpus_per_node
    with _fake_process_group(gpus), mock.patch("torchtitan.distributed.parallel_dims.device_type", "cpu"):
        dims = ParallelDims(dp_shard=p.data_parallel_shard_degree, dp_replicate=nodes, cp=1, tp=1, pp=1, ep=1,
                            etp=1, world_size=gpus)
        with torch.device("meta"), set_default_dtype(TORCH_DTYPE_MAP[cfg.training.dtype]):
            model = spec.model_cls(model_args)
        block = model.layers["0"]
        shape = ModelShape(
            n_layers=len(model.layers),
            dim=model.tok_embeddings.weight.shape[1],
            n_heads=block.attention.n_heads,
            kv_dim=block.attention.wk.weight.shape[0],
            ffn_dim=block.feed_forward.w1.weight.shape[0],
            vocab=model.output.weight.shape[0],
        )
        total_params = sum(t.numel() for t in model.parameters())
        model = spec.parallelize_fn(model, dims, cfg)
        units = _fsdp_units(model)
        shards = [(fp, g.mp_policy.reduce_dtype) for g in _param_groups(model) for fp in g.fsdp_params]
        if sum(fp.sharded_param.numel() for fp, _ in shards) != total_params:
            raise RuntimeError(f"{config_file}: FSDP does not manage every parameter; the plan would miss some")
        param_bytes = sum(fp.padded_sharded_param_size.numel() * fp.sharded_param.dtype.itemsize for fp, _ in shards)
        param_bytes += sum(b.numel() * b.element_size() for b in model.buffers())
        grad_bytes = sum(
            fp.padded_sharded_param_size.numel() * (reduce or fp.sharded_param.dtype).itemsize for fp, reduce in shards
        )
        optimizers = spec.build_optimizers_fn([model], cfg.optimizer, dims)
        state = []
        for opt in optimizers.optimizers:
            _materialize_lazy_state(opt)
            state += [t for s in opt.state.values() for t in s.values() if isinstance(t, torch.Tensor)]
        global_batch = cfg.training.global_batch_size
        return StaticMemory(
            config=config_file,
            flavor=flavor,
            optimizer=cfg.optimizer.name,
            nodes=nodes,
            gpus=gpus,
            dp_shard=dims.dp_shard,
            dp_replicate=dims.dp_replicate,
            global_batch=global_batch,
            local_batch=cfg.training.local_batch_size,
            seq_len=cfg.training.seq_len,
            ac_mode=cfg.activation_checkpoint.mode,
            ac_option=str(cfg.activation_checkpoint.selective_ac_option),
            compiled_loss=bool(cfg.compile.enable and "loss" in cfg.compile.components),
            shape=shape,
            total_params=total_params,
            local_params=sum(_local(t).numel() for t in model.parameters()),
            param_bytes=param_bytes,
            grad_bytes=grad_bytes,
            optimizer_bytes=sum(_local(t).numel() * t.element_size() for t in state),
            optimizer_tensors=len(state),
            units=tuple(units),
        )


def paper_configs() -> list[str]:
    """The paper's configs in ``configs/`` (``llama_*.toml``), sorted by size, then optimizer."""
    import glob

    from gpa_titan.optim.registry import OPTIMIZERS
    from gpa_titan.paths import CONFIG_DIR

    paths = glob.glob(os.path.join(CONFIG_DIR, PAPER_CONFIG_GLOB))
    sizes = {name.lower(): i for i, name in enumerate(NODES)}
    order = {spec.config_key: i for i, spec in enumerate(OPTIMIZERS.values())}

    def key(path: str):
        _, size, opt = os.path.splitext(os.path.basename(path))[0].split("_", 2)
        return sizes.get(size, len(sizes)), order.get(opt, len(order)), path

    return sorted(paths, key=key)


@functools.lru_cache(maxsize=8)
def _measure_in_child(config_files: tuple[str, ...], mtimes: tuple[float, ...], nodes: int | None,
                      gpus_per_node: int) -> tuple:
    import gpa_titan

    package_root = os.path.dirname(os.path.dirname(os.path.abspath(gpa_titan.__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "gpa_titan.tools.memory_plan", "--gpus-per-node", str(gpus_per_node)]
    if nodes is not None:
        cmd += ["--nodes", str(nodes)]
    proc = subprocess.run([*cmd, *config_files], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        raise RuntimeError(f"measuring failed: {lines[-1] if lines else proc.returncode}\n{proc.stderr[-4000:]}")
    return tuple(StaticMemory.from_dict(d) for d in json.loads(proc.stdout))


def measure_configs(config_files: Iterable[str], nodes: int | None = None,
                    gpus_per_node: int = GPUS_PER_NODE) -> list[StaticMemory]:
    """``measure_static`` for several configs, in one child process (nothing is left in this
    one); results are cached per argument list and file modification times.

    Args:
        config_files (Iterable[str]): TOML configs.
        nodes (int | None): nodes for all of them; None: each config's ``NODES[flavor]``.
        gpus_per_node (int): GPUs per node (default 8).
    """
    files = tuple(os.path.abspath(f) for f in config_files)
    return list(_measure_in_child(files, tuple(os.path.getmtime(f) for f in files), nodes, gpus_per_node))


# ---------------------------------------------------------------------- what is estimated
def layer_bytes_per_token(shape: ModelShape, mode: str, c: int) -> int:
    """Activation bytes one transformer block keeps per token (module docstring's formula).

    Args:
        shape (ModelShape): the model.
        mode (str): ``"none"``, ``"selective"`` (op policy) or ``"full"``.
        c (int): bytes per activation element (2 for bf16).
    """
    d, k, f, h = shape.dim, shape.kv_dim, shape.ffn_dim, shape.n_heads
    if mode == "none":
        return c * (6 * d + 2 * k + 3 * f) + 2 * 4 + 4 * h
    if mode == "selective":
        return c * (3 * d + k + f) + 4 * h
    if mode == "full":
        return c * d
    raise ValueError(f"[activation_checkpoint] mode = {mode!r}: the plan knows {AC_MODES}")


@dataclass(frozen=True)
class ActivationEstimate:
    """What forward/backward adds to the static memory at its peak, per GPU (bytes).

    Args:
        kept (int): activations kept for backward by all blocks, the final norm and the ids.
        loss (int): the loss's moment: logit buffers plus the units kept unsharded after forward.
        output_backward (int): the output projection's backward (logit gradient, the kept
            units' weights, unsharded gradients and reduce-scatter input, a prefetched block).
        block_backward (int): a block's backward (recomputed activations, two blocks
            all-gathered, the block's unsharded gradients and reduce-scatter input).
    """

    kept: int
    loss: int
    output_backward: int
    block_backward: int

    @property
    def total(self) -> int:
        return self.kept + max(self.loss, self.output_backward, self.block_backward)


def estimate_activations(static: StaticMemory, local_batch: int | None = None, ac_mode: str | None = None,
                         ac_option: str | None = None) -> ActivationEstimate:
    """Estimate the activation-side peak of one micro-batch (module docstring).

    Args:
        static (StaticMemory): the measured config.
        local_batch (int | None): sequences per GPU per micro-batch (default: the config's).
        ac_mode (str | None): ``"none"``, ``"selective"`` or ``"full"`` (default: the config's).
        ac_option (str | None): ``selective_ac_option`` (default: the config's): ``"op"`` or
            an integer n (every n-th block fully checkpointed).
    """
    b = static.local_batch if local_batch is None else local_batch
    mode = static.ac_mode if ac_mode is None else ac_mode
    option = static.ac_option if ac_option is None else ac_option
    shape, tokens = static.shape, b * static.seq_len
    blocks = [u for u in static.units if u.is_block]
    kept_units = [u for u in static.units if not u.reshard_after_forward]
    c = blocks[0].compute_bytes
    block_numel = max(u.numel for u in blocks)
    block_reduce = blocks[0].reduce_bytes
    full_layer = layer_bytes_per_token(shape, "none", c)
    if mode == "selective" and option != "op":
        n_ckpt = shape.n_layers // int(option)
        per_layer_total = (shape.n_layers - n_ckpt) * full_layer + n_ckpt * layer_bytes_per_token(shape, "full", c)
        recompute = full_layer - layer_bytes_per_token(shape, "full", c) if n_ckpt else 0
    else:
        per_layer_total = shape.n_layers * layer_bytes_per_token(shape, mode, c)
        recompute = full_layer - layer_bytes_per_token(shape, mode, c)
    kept = tokens * (per_layer_total + 2 * c * shape.dim + 4 + 8)
    logits = tokens * shape.vocab
    kept_weights = sum(u.numel * u.compute_bytes for u in kept_units)
    kept_backward = sum(u.numel * (2 * u.compute_bytes + u.reduce_bytes) for u in kept_units)
    loss_bytes = LOSS_BYTES_COMPILED if static.compiled_loss else LOSS_BYTES_EAGER
    return ActivationEstimate(
        kept=kept,
        loss=logits * loss_bytes + kept_weights,
        output_backward=logits * c + kept_backward + block_numel * c,
        block_backward=tokens * recompute + block_numel * (3 * c + block_reduce),
    )


# ---------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class MemoryPlan:
    """One config at one (local batch, AC mode): static memory measured, activations estimated.

    Args:
        static (StaticMemory): the measured config.
        local_batch (int): sequences per GPU per micro-batch.
        ac_mode (str): activation checkpointing mode.
        activations (ActivationEstimate): the estimate at that choice.
        gpu_memory_gib (float): the GPU's memory (default 80).
    """

    static: StaticMemory
    local_batch: int
    ac_mode: str
    activations: ActivationEstimate
    gpu_memory_gib: float = DEFAULT_GPU_MEMORY_GIB

    @property
    def total_bytes(self) -> int:
        return self.static.static_bytes + self.activations.total

    @property
    def headroom_bytes(self) -> float:
        return self.gpu_memory_gib * GIB - self.total_bytes

    @property
    def headroom_fraction(self) -> float:
        return self.headroom_bytes / (self.gpu_memory_gib * GIB)

    @property
    def grad_accumulation(self) -> int | None:
        """Micro-batches per step (None when the local batch does not divide the global one)."""
        g = self.static.global_batch
        if g < 0:
            return 1
        per_step = self.local_batch * self.static.dp_degree
        return g // per_step if g % per_step == 0 else None

    def fits(self, headroom: float = DEFAULT_HEADROOM) -> bool:
        """Whether at least ``headroom`` (a fraction, default 0.1) of the GPU stays free."""
        return self.headroom_fraction >= headroom


def plan(static: StaticMemory, local_batch: int | None = None, ac_mode: str | None = None,
         gpu_memory_gib: float = DEFAULT_GPU_MEMORY_GIB) -> MemoryPlan:
    """The plan at the config's choice, or at another (local batch, AC mode).

    Args:
        static (StaticMemory): the measured config.
        local_batch (int | None): default: the config's ``local_batch_size``.
        ac_mode (str | None): default: the config's ``[activation_checkpoint] mode`` (and its
            ``selective_ac_option``; another mode is planned with the ``"op"`` policy).
        gpu_memory_gib (float): the GPU's memory in GiB (default 80).
    """
    b = static.local_batch if local_batch is None else local_batch
    mode = static.ac_mode if ac_mode is None else ac_mode
    option = static.ac_option if mode == static.ac_mode else "op"
    return MemoryPlan(static, b, mode, estimate_activations(static, b, mode, option), gpu_memory_gib)


def candidate_local_batches(static: StaticMemory, largest: int = 64) -> list[int]:
    """Local batches that keep the global batch: divisors of global / data-parallel degree
    (powers of two up to ``largest`` when the global batch follows the local one)."""
    if static.global_batch < 0:
        return [2**i for i in range(int(math.log2(largest)) + 1)]
    per_rank, rem = divmod(static.global_batch, static.dp_degree)
    if rem:
        return []
    return [n for n in range(1, per_rank + 1) if per_rank % n == 0]


def largest_fitting(static: StaticMemory, ac_mode: str, gpu_memory_gib: float = DEFAULT_GPU_MEMORY_GIB,
                    headroom: float = DEFAULT_HEADROOM) -> MemoryPlan | None:
    """The largest candidate local batch that fits with ``headroom`` in ``ac_mode``, or None."""
    plans = [plan(static, b, ac_mode, gpu_memory_gib) for b in candidate_local_batches(static)]
    return max((p for p in plans if p.fits(headroom)), key=lambda p: p.local_batch, default=None)


def search(static: StaticMemory, gpu_memory_gib: float = DEFAULT_GPU_MEMORY_GIB,
           headroom: float = DEFAULT_HEADROOM) -> MemoryPlan | None:
    """The fewest-recomputation AC mode (``AC_MODES`` order) with a local batch that fits with
    ``headroom``, at the largest such local batch; None if nothing fits.

    Args:
        static (StaticMemory): the measured config.
        gpu_memory_gib (float): the GPU's memory in GiB (default 80).
        headroom (float): fraction of it to leave free (default 0.1).
    """
    for mode in AC_MODES:
        if (best := largest_fitting(static, mode, gpu_memory_gib, headroom)) is not None:
            return best
    return None


# ---------------------------------------------------------------------- tables
def _gib(n: float) -> str:
    return f"{n / GIB:.2f}"


def plan_table(plans: Sequence[MemoryPlan]) -> str:
    """A markdown table, one row per plan (``python scripts/memory_plan.py`` prints it)."""
    gpu = {p.gpu_memory_gib for p in plans}
    of = f"{gpu.pop():g} GiB" if len(gpu) == 1 else "the GPU"
    lines = [
        "| config | GPUs | dp shard x replicate | local batch (accum.) | AC | optimizer | params | grads | "
        f"optimizer state | activations (est.) | total | headroom of {of} |",
        "|---|---:|---|---:|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for p in plans:
        s = p.static
        accum = p.grad_accumulation
        lines.append(
            f"| {s.name} | {s.gpus} | {s.dp_shard} x {s.dp_replicate} | {p.local_batch} "
            f"({accum if accum is not None else 'n/a'}) | {p.ac_mode} | {s.optimizer} | {_gib(s.param_bytes)} | "
            f"{_gib(s.grad_bytes)} | {_gib(s.optimizer_bytes)} | {_gib(p.activations.total)} | "
            f"{_gib(p.total_bytes)} | {_gib(p.headroom_bytes)} ({p.headroom_fraction:.0%}) |"
        )
    return "\n".join(lines)


def search_table(statics: Sequence[StaticMemory], gpu_memory_gib: float = DEFAULT_GPU_MEMORY_GIB,
                 headroom: float = DEFAULT_HEADROOM) -> str:
    """Per config: for each AC mode the largest local batch that fits (its total, GiB), the
    search's choice, and the config's own choice."""
    lines = [
        f"| config | optimizer | static | {' | '.join(AC_MODES)} | choice (fits with {headroom:.0%} of "
        f"{gpu_memory_gib:g} GiB free) | configured |",
        "|---|---|---:|" + "---:|" * len(AC_MODES) + "---|---|",
    ]
    for s in statics:
        cells = []
        for mode in AC_MODES:
            best = largest_fitting(s, mode, gpu_memory_gib, headroom)
            cells.append("does not fit" if best is None else f"{best.local_batch} ({_gib(best.total_bytes)})")
        choice = search(s, gpu_memory_gib, headroom)
        chosen = "nothing fits" if choice is None else f"{choice.ac_mode}, local batch {choice.local_batch}"
        lines.append(
            f"| {s.name} | {s.optimizer} | {_gib(s.static_bytes)} | {' | '.join(cells)} | {chosen} | "
            f"{s.ac_mode}, local batch {s.local_batch} |"
        )
    return "\n".join(lines)


def header_line(p: MemoryPlan) -> str:
    """The line the paper configs' headers carry (scripts/make_configs.py writes it)."""
    s = p.static
    return (
        f"Memory (scripts/memory_plan.py): ~{p.total_bytes / GIB:.1f} GiB of {p.gpu_memory_gib:g} per GPU: "
        f"params {_gib(s.param_bytes)}, grads {_gib(s.grad_bytes)}, "
        f"optimizer {_gib(s.optimizer_bytes)}, activations ~{p.activations.total / GIB:.1f} (est.), "
        f"AC {p.ac_mode}, local batch {p.local_batch}"
    )


def _worker(argv: list[str] | None = None) -> int:
    """``python -m gpa_titan.tools.memory_plan [--nodes N] CONFIG...``: JSON of
    ``measure_static`` for each config on stdout (what ``measure_configs`` runs)."""
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("configs", nargs="+")
    ap.add_argument("--nodes", type=int)
    ap.add_argument("--gpus-per-node", type=int, default=GPUS_PER_NODE)
    args = ap.parse_args(argv)
    out, sys.stdout = sys.stdout, sys.stderr  # anything printed while measuring goes to stderr
    try:
        results = [dataclasses.asdict(measure_static(c, args.nodes, args.gpus_per_node)) for c in args.configs]
    finally:
        sys.stdout = out
    json.dump(results, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(_worker())
