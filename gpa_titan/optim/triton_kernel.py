"""A hand-written Triton kernel for the GPA-AdamW update: one launch per step.

The math is ``gpa_adamw.gpa_adamw_update_`` (and the C++ CPU kernel
``csrc/gpa_adamw_cpu.cpp``), elementwise, with the ten host-computed coefficients
``c`` of ``gpa_adamw.GPACoefficients`` (in its field order)::

    m' = m + (g - m) * c0
    v' = v * c1 + g*g * c2
    u  = m' / (sqrt(v') * c3 + c4)
    y' = y * c5 + z * c6 + u * c7      # the old z
    z' = z - z * c8 + u * c9

written in place into m, v, y, z. Every value is loaded, computed in float32 whatever
the storage dtype (float32 or bfloat16) and rounded once (round-to-nearest-even) on
store. ``sqrt`` and the division are the IEEE-rounded ``sqrt_rn``/``div_rn`` (Triton's
plain ``sqrt`` and ``/`` may be approximate on GPUs), so results match the eager and
C++ kernels to float32 rounding.

Design: one launch over all tensors, through cached device tables
-------------------------------------------------------------------
A step over a model's T parameters is ONE kernel launch, not T (two when some tensors
are not 16-byte aligned: see "No whole-launch slow path"). Its grid has one
program per BLOCK (1024) elements of every non-empty tensor, and it reads two int64
tables that live in one device buffer:

* the block table, ``[n_blocks]``: the index of the tensor each program works on;
* the tensor table, ``[T, 8]``: the data pointers of y, z, g, m, v, the element count,
  the tensor's first block and a pad word (64-byte rows; the block table is padded to
  an even length so that both tables start 16-byte aligned).

A program reads its row, casts the five int64 addresses to pointers of the storage
dtype and processes elements ``[start, start + BLOCK)`` of that tensor, with
``start = (program_id - first_block) * BLOCK``. Offsets and counts are int64 throughout
(``program_id`` is widened before use), so tensors of more than 2**31 elements index
correctly. (The grid itself is limited to 2**31 - 1 programs, i.e. 2**41 elements.)

The tables are built on the host and copied (pinned, non-blocking) to the device only
when the tensors change: they are cached, keyed on (device, dtype, every data_ptr,
every numel), in a small LRU (``_CACHE_SIZE`` entries: one per param group or dtype
group is typical). A table is a pure function of its key, so a hit is always correct,
even if the tensors were reallocated at the same addresses. In steady state a step
makes no host-to-device copy and no synchronisation: Python builds the key (a few
attribute reads per tensor) and launches once. Caveat: ``zero_grad(set_to_none=True)``
reallocates the gradients; PyTorch's caching allocator usually hands the same addresses
back, but when it does not, that step rebuilds the table (one small pinned copy).
``table_cache_info()`` reports hits, misses and the cache size.

Compilation: the kernel's only runtime arguments are the two table pointers (always
16-byte aligned, so the alignment specialisation never changes) and the ten
coefficients. Python floats are passed as fp32 scalars and Triton never specialises
non-constexpr floats on their values, so a new lr every step does not recompile
(``do_not_specialize`` is not needed and not used). There are no integer size
arguments, so tensor sizes never recompile either. The constexprs are the storage dtype
and ``ALIGNED`` (whether all five addresses of every tensor are 16-byte aligned, as
fresh PyTorch allocations are): at most four compiled variants per device.

Vectorisation: addresses loaded from memory carry no alignment facts, so when
``ALIGNED`` the kernel asserts 16-byte alignment with ``tl.multiple_of`` on the five
pointers. The hints sit on the int-to-pointer casts: Triton's axis analysis drops a hint
placed on a scalar ``tl.load`` result (checked: that version compiled to scalar
``ld.global.b32``). ``start`` is a product with BLOCK, so its divisibility is known
without a hint. Full blocks are processed without a mask (a mask ``offs < n`` with an
unknown ``n`` would defeat vector loads); only a tensor's last, partial block is masked.
The ALIGNED variant's full-block path uses ``ld.global.v4.b32``/``st.global.v4.b32``
(16-byte accesses, fp32 and bf16 alike); the unaligned variant and tail blocks use
scalar accesses.

No whole-launch slow path: the launcher splits a step's tensors into the aligned ones
(all five addresses 16-byte aligned, as fresh PyTorch allocations and FSDP2 shards of
the shipped shapes are) and the rest, each with its own cached table, so one odd view
(an odd storage offset) sends only itself to the unaligned variant: two launches
instead of one, never a slower whole model. ``launch_plan`` says which tensors go where.

Rounding: no contraction. Every add, multiply, ``div_rn`` and ``sqrt_rn`` is rounded
once, in the order written, because the launcher passes ``enable_fp_fusion=False``
(Triton 3.9 contracts mul+add into FMA by default and 3.10 will not; the choice is made
here, not by the Triton version). So in float32 the kernel is bit-identical to the eager
``gpa_adamw_update_`` on float32 tensors (separate torch ops, each rounded), on CPU
through the interpreter and on CUDA, and in bfloat16 to that float32 computation rounded
once on store; the tests compare bitwise. FMA would save a rounding per term but tie the
result to the compiler; on a memory-bound kernel it buys no speed.

Compile check without a GPU: ``triton_build_check`` compiles every variant the launcher
can use (``VARIANTS``, with ``RUNTIME_SIGNATURE`` and ``launch_options`` from this
module) for sm_90 and sm_80 through ``triton.compile`` and the ptxas inside the triton
wheel, and checks the PTX and ptxas's report: 16-byte accesses on the aligned path,
``sqrt.rn``/``div.rn``, no ``fma``, no spills, no local or shared memory.

Why not per-tensor launches? They would cost T launches of host overhead per step (tens
of microseconds each) and recompile on every change of the size's divisibility class.
Per-tensor launches are only needed where the pointer table cannot work; it does work
under Triton's CPU interpreter (``TRITON_INTERPRET=1``): there, pointers are host
addresses, the table holds the CPU tensors' ``data_ptr()`` values, and the interpreter's
loads and stores through int-to-pointer casts dereference them directly (tested in
``tests/unit/test_triton_kernel.py``; the whole test file runs in ~20-30 s on one core). The
one thing the interpreter cannot do is run the table on GPU tensors (it would
dereference device addresses on the host), so that combination raises.

Interpreter notes (Triton 3.9): the interpreter runs one program (1024 elements) in about
3.5 ms, so a 1M-element step takes ~3.5 s: test with small tensors. Its float32 ->
bfloat16 cast truncates instead of rounding to nearest (even with
``fp_downcast_rounding="rtne"``), hence the integer rounding in ``_to_storage``, which is
bit-identical to ``torch.Tensor.to(torch.bfloat16)`` (checked on 240k values including
ties, subnormals, infinities and NaN). The compiled kernel is built for sm_90 and sm_80
in CI by ``triton_build_check``; the GPU tests (``pytest -m gpu``) run it.

CPU tensors need ``TRITON_INTERPRET=1`` set in the environment before this module is
imported (Triton decides at ``@triton.jit`` time whether to interpret); without it a
CPU call raises a RuntimeError (use ``GPAAdamW``'s "fused" C++ kernel or "foreach").
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
import triton
import triton.language as tl

__all__ = [
    "BLOCK_SIZE",
    "KERNEL",
    "RUNTIME_SIGNATURE",
    "VARIANTS",
    "clear_table_cache",
    "gpa_adamw_triton_step",
    "launch_options",
    "launch_plan",
    "table_cache_info",
]

BLOCK_SIZE = 1024  # elements per program: 4 warps x 32 threads x 8 elements
_NUM_WARPS = 4
_ROW = 8  # int64 words per tensor-table row: y, z, g, m, v, numel, first block, pad
_ALIGN = 16  # bytes: the alignment asserted to the compiler when ALIGNED
_CACHE_SIZE = 8
_MAX_GRID = 2**31 - 1  # CUDA's grid x limit
_DTYPES = {torch.float32: tl.float32, torch.bfloat16: tl.bfloat16}
_FP_FUSION = False  # no mul+add contraction: see "Rounding" above


@triton.jit
def _to_storage(x, DTYPE: tl.constexpr):
    """Round float32 ``x`` to the storage dtype, to nearest even.

    bfloat16 is rounded with integer ops rather than ``x.to(tl.bfloat16)``: same result
    on GPUs (one code path, tested on CPU), but Triton 3.9's interpreter truncates in
    that cast. NaN stays NaN (the add would carry a NaN's payload into the sign bit).
    """
    if DTYPE == tl.bfloat16:
        bits = x.to(tl.uint32, bitcast=True)
        rounded = (bits + (((bits >> 16) & 1) + 0x7FFF)) >> 16
        rounded = tl.where(x != x, 0x7FC0, rounded)  # noqa: PLR0124 (NaN test)
        return rounded.to(tl.uint16).to(tl.bfloat16, bitcast=True)
    else:
        return x.to(DTYPE)


@triton.jit
def _update(y_ptr, z_ptr, g_ptr, m_ptr, v_ptr, offs, n,
            c0, c1, c2, c3, c4, c5, c6, c7, c8, c9,
            DTYPE: tl.constexpr, MASKED: tl.constexpr):
    if MASKED:
        mask = offs < n
        other = 0.0
    else:
        mask = None
        other = None
    y = tl.load(y_ptr + offs, mask=mask, other=other).to(tl.float32)
    z = tl.load(z_ptr + offs, mask=mask, other=other).to(tl.float32)
    g = tl.load(g_ptr + offs, mask=mask, other=other).to(tl.float32)
    m = tl.load(m_ptr + offs, mask=mask, other=other).to(tl.float32)
    v = tl.load(v_ptr + offs, mask=mask, other=other).to(tl.float32)
    m = m + (g - m) * c0
    v = v * c1 + g * g * c2
    u = tl.div_rn(m, tl.sqrt_rn(v) * c3 + c4)
    y = y * c5 + z * c6 + u * c7  # the old z
    z = z - z * c8 + u * c9
    tl.store(m_ptr + offs, _to_storage(m, DTYPE), mask=mask)
    tl.store(v_ptr + offs, _to_storage(v, DTYPE), mask=mask)
    tl.store(y_ptr + offs, _to_storage(y, DTYPE), mask=mask)
    tl.store(z_ptr + offs, _to_storage(z, DTYPE), mask=mask)


@triton.jit
def _gpa_adamw_table_kernel(
    block_table,  # *i64 [n_blocks]: the tensor index of each program
    tensor_table,  # *i64 [T, 8]: addresses of y, z, g, m, v; numel; first block; pad
    c0, c1, c2, c3, c4, c5, c6, c7, c8, c9,  # fp32 scalars, never value-specialised
    DTYPE: tl.constexpr,
    BLOCK: tl.constexpr,
    ALIGNED: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    row = tensor_table + tl.load(block_table + pid) * 8
    n = tl.load(row + 5)
    start = (pid - tl.load(row + 6)) * BLOCK  # int64, and a multiple of BLOCK by construction
    ptr_ty = tl.pointer_type(DTYPE)
    y_ptr = tl.load(row + 0).to(ptr_ty)
    z_ptr = tl.load(row + 1).to(ptr_ty)
    g_ptr = tl.load(row + 2).to(ptr_ty)
    m_ptr = tl.load(row + 3).to(ptr_ty)
    v_ptr = tl.load(row + 4).to(ptr_ty)
    if ALIGNED:  # the hints must sit on the casts: Triton ignores them on a scalar load
        y_ptr = tl.multiple_of(y_ptr, 16)
        z_ptr = tl.multiple_of(z_ptr, 16)
        g_ptr = tl.multiple_of(g_ptr, 16)
        m_ptr = tl.multiple_of(m_ptr, 16)
        v_ptr = tl.multiple_of(v_ptr, 16)
    offs = start + tl.arange(0, BLOCK)
    if start + BLOCK <= n:  # a full block: no mask, so loads can vectorise
        _update(y_ptr, z_ptr, g_ptr, m_ptr, v_ptr, offs, n, c0, c1, c2, c3, c4, c5, c6, c7, c8, c9,
                DTYPE, False)
    else:  # the tensor's last, partial block
        _update(y_ptr, z_ptr, g_ptr, m_ptr, v_ptr, offs, n, c0, c1, c2, c3, c4, c5, c6, c7, c8, c9,
                DTYPE, True)


KERNEL = _gpa_adamw_table_kernel
# The runtime arguments as the launcher passes them (Triton's signature types): the two
# int64 tables (always 16-byte aligned) and ten float32 coefficients.
RUNTIME_SIGNATURE = {"block_table": "*i64", "tensor_table": "*i64", **{f"c{i}": "fp32" for i in range(10)}}
# Every (storage dtype, ALIGNED) pair the launcher can compile: four variants per device.
VARIANTS = tuple((dtype, aligned) for dtype in _DTYPES for aligned in (True, False))


def launch_options(dtype: torch.dtype, aligned: bool) -> dict:
    """The constexprs and compile options of one launch: what ``gpa_adamw_triton_step``
    passes and what ``triton_build_check`` compiles."""
    return {"DTYPE": _DTYPES[dtype], "BLOCK": BLOCK_SIZE, "ALIGNED": aligned, "num_warps": _NUM_WARPS,
            "enable_fp_fusion": _FP_FUSION}


def _is_aligned(ptrs: Sequence[int]) -> bool:
    return all(p % _ALIGN == 0 for p in ptrs)


def launch_plan(tensor_ptrs: Sequence[Sequence[int]]) -> list[tuple[bool, list[int]]]:
    """Which tensors each launch of a step covers: ``[(aligned, indices), ...]``.

    ``tensor_ptrs[i]`` holds tensor i's five addresses (y, z, g, m, v). Tensors whose five
    addresses are all 16-byte aligned go to one ALIGNED launch, the rest to one unaligned
    launch, so an odd view never moves the others off the vectorised path. Launches with
    no tensor are left out.
    """
    aligned = [i for i, ptrs in enumerate(tensor_ptrs) if _is_aligned(ptrs)]
    unaligned = [i for i, ptrs in enumerate(tensor_ptrs) if not _is_aligned(ptrs)]
    return [(flag, idx) for flag, idx in ((True, aligned), (False, unaligned)) if idx]


def _is_interpreted() -> bool:
    """Whether ``@triton.jit`` produced an interpreted kernel (TRITON_INTERPRET=1 at import)."""
    return type(_gpa_adamw_table_kernel).__name__ == "InterpretedFunction"


class _TableCache:
    """LRU of device tables keyed on (device, dtype, data_ptrs, numels)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.entries: OrderedDict[tuple, tuple[torch.Tensor, torch.Tensor, int, bool]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple, ptrs: list[int], numels: list[int], device: torch.device):
        entry = self.entries.get(key)
        if entry is not None:
            self.hits += 1
            self.entries.move_to_end(key)
            return entry
        self.misses += 1
        entry = _build_tables(ptrs, numels, device)
        self.entries[key] = entry
        if len(self.entries) > self.size:
            self.entries.popitem(last=False)
        return entry


_CACHE = _TableCache(_CACHE_SIZE)


def table_cache_info() -> dict[str, int]:
    """Counters of the table cache: ``hits``, ``misses`` (= table builds) and ``size``."""
    return {"hits": _CACHE.hits, "misses": _CACHE.misses, "size": len(_CACHE.entries)}


def clear_table_cache() -> None:
    """Drop every cached table and reset the counters."""
    _CACHE.entries.clear()
    _CACHE.hits = _CACHE.misses = 0


def _build_tables(ptrs: list[int], numels: list[int], device: torch.device):
    """Host-build the block and tensor tables, copy them to ``device`` in one buffer."""
    n_tensors = len(numels)
    counts = torch.tensor([-(-n // BLOCK_SIZE) for n in numels], dtype=torch.int64)
    n_blocks = int(counts.sum())
    if n_blocks > _MAX_GRID:
        raise ValueError(f"{n_blocks} blocks of {BLOCK_SIZE} elements exceed the grid limit {_MAX_GRID}")
    tensor_of_block = torch.repeat_interleave(torch.arange(n_tensors, dtype=torch.int64), counts)
    rows = torch.zeros(n_tensors, _ROW, dtype=torch.int64)
    rows[:, :5] = torch.tensor(ptrs, dtype=torch.int64).view(n_tensors, 5)
    rows[:, 5] = torch.tensor(numels, dtype=torch.int64)
    rows[:, 6] = torch.cumsum(counts, 0) - counts  # each tensor's first block
    # The block table first, padded to an even length so that the tensor table (64-byte
    # rows) starts 16-byte aligned: both table pointers keep one alignment class.
    pad = torch.zeros(n_blocks % 2, dtype=torch.int64)
    table = torch.cat([tensor_of_block, pad, rows.view(-1)])
    if device.type != "cpu":
        table = table.pin_memory().to(device, non_blocking=True)
    split = n_blocks + n_blocks % 2
    return table[:n_blocks], table[split:], n_blocks, _is_aligned(ptrs)


def gpa_adamw_triton_step(
    ys: Sequence[torch.Tensor],
    zs: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor],
    exp_avgs: Sequence[torch.Tensor],
    exp_avg_sqs: Sequence[torch.Tensor],
    coefs: Sequence[float],
) -> None:
    """One GPA-AdamW step over lists of tensors, in place, in one Triton launch (two when
    some tensors are not 16-byte aligned: ``launch_plan``).

    Args:
        ys: the parameters (they hold y), updated in place to y_{t+1}.
        zs: the z buffers, updated in place to z_{t+1}.
        grads: the gradients, taken at y; read only.
        exp_avgs: AdamW's first moments, updated in place.
        exp_avg_sqs: AdamW's second moments, updated in place.
        coefs: ten Python floats in the field order of ``gpa_adamw.GPACoefficients``
            (one_minus_beta1, beta2, one_minus_beta2, inv_sqrt_bias_correction2, eps, mu_x,
            y_from_z, y_from_u, lr_wd, z_from_u), e.g. a ``GPACoefficients``. They are
            passed to the kernel as float32 scalars (a new lr never recompiles).

    The five lists have one entry per tensor; entry i of each must have the same shape.
    Every tensor must be contiguous, and all must share one device and one dtype,
    float32 or bfloat16 (the math runs in float32 and rounds once on store). Any sizes
    are fine; empty tensors are skipped.

    Raises:
        ValueError: on mismatched list lengths, shapes, dtypes or devices, an unsupported
            dtype, a non-contiguous tensor or a number of coefficients other than ten.
        RuntimeError: on CPU tensors without ``TRITON_INTERPRET=1`` (set before this
            module is imported), or on non-CPU tensors under the interpreter.
    """
    lists = (ys, zs, grads, exp_avgs, exp_avg_sqs)
    names = ("ys", "zs", "grads", "exp_avgs", "exp_avg_sqs")
    for name, lst in zip(names, lists):
        if isinstance(lst, torch.Tensor):  # would silently iterate over its rows
            raise ValueError(f"gpa_adamw_triton_step: {name} must be a list of tensors, not a tensor")
    n_tensors = len(ys)
    if any(len(lst) != n_tensors for lst in lists):
        lengths = ", ".join(f"{name}={len(lst)}" for name, lst in zip(names, lists))
        raise ValueError(f"gpa_adamw_triton_step: the five tensor lists differ in length ({lengths})")
    if len(coefs) != 10:
        raise ValueError(f"gpa_adamw_triton_step: expected 10 coefficients, got {len(coefs)}")
    if n_tensors == 0:
        return
    c = [float(x) for x in coefs]
    dtype, device = ys[0].dtype, ys[0].device
    if dtype not in _DTYPES:
        raise ValueError(
            f"gpa_adamw_triton_step: unsupported dtype {dtype} (ys[0]); the Triton kernel "
            "supports torch.float32 and torch.bfloat16 storage"
        )
    tensor_ptrs: list[tuple[int, ...]] = []
    numels: list[int] = []
    for i in range(n_tensors):
        shape = ys[i].shape
        for name, lst in zip(names, lists):
            t = lst[i]
            if t.dtype != dtype:
                raise ValueError(
                    f"gpa_adamw_triton_step: all tensors must share one dtype, but {name}[{i}] is "
                    f"{t.dtype} and ys[0] is {dtype}"
                )
            if t.device != device:
                raise ValueError(
                    f"gpa_adamw_triton_step: all tensors must be on one device, but {name}[{i}] is "
                    f"on {t.device} and ys[0] on {device}"
                )
            if t.shape != shape:
                raise ValueError(
                    f"gpa_adamw_triton_step: {name}[{i}] has shape {tuple(t.shape)}, ys[{i}] {tuple(shape)}"
                )
            if not t.is_contiguous():
                raise ValueError(f"gpa_adamw_triton_step: {name}[{i}] is not contiguous")
        n = ys[i].numel()
        if n == 0:
            continue  # e.g. an empty FSDP shard
        tensor_ptrs.append(tuple(lst[i].data_ptr() for lst in lists))
        numels.append(n)
    interpreted = _is_interpreted()
    if device.type == "cpu" and not interpreted:
        raise RuntimeError(
            "gpa_adamw_triton_step got CPU tensors but Triton is not in interpreter mode: set "
            "TRITON_INTERPRET=1 in the environment before importing gpa_titan.optim.triton_kernel, "
            "or use another implementation on CPU (GPAAdamW's 'fused' C++ kernel or 'foreach')"
        )
    if device.type != "cpu" and interpreted:
        raise RuntimeError(
            f"gpa_adamw_triton_step: under TRITON_INTERPRET=1 the tensors must be on the CPU (got "
            f"{device}): the kernel's pointer table would hold device addresses that the "
            "interpreter dereferences on the host"
        )
    if not numels:
        return
    for _, indices in launch_plan(tensor_ptrs):
        ptrs = [p for i in indices for p in tensor_ptrs[i]]
        sizes = [numels[i] for i in indices]
        key = (device, dtype, tuple(ptrs), tuple(sizes))
        block_table, tensor_table, n_blocks, aligned = _CACHE.get(key, ptrs, sizes, device)
        kernel = _gpa_adamw_table_kernel[(n_blocks,)]
        args = (block_table, tensor_table, *c)
        if device.type == "cuda":
            with torch.cuda.device(device):
                kernel(*args, **launch_options(dtype, aligned))
        else:
            kernel(*args, **launch_options(dtype, aligned))
