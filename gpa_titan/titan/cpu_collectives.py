"""Agreement between ranks on host-side flags, over a gloo group (CPU tensors), so that it never
waits for the accelerator."""

from __future__ import annotations

import functools

import torch
import torch.distributed as dist


@functools.cache
def cpu_group() -> dist.ProcessGroup | None:
    """A gloo group of all ranks (None: the default group, when it is already gloo). The first
    call is a collective: every rank makes it at the same point (trainer start-up)."""
    return None if dist.get_backend() == "gloo" else dist.new_group(backend="gloo")


def _reduce_flag(flag: bool, op: dist.ReduceOp) -> bool:
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int32)
    dist.all_reduce(t, op=op, group=cpu_group())
    return bool(t.item())


def any_rank(flag: bool) -> bool:
    """True on every rank if ``flag`` is true on any."""
    return _reduce_flag(flag, dist.ReduceOp.MAX)


def all_ranks(flag: bool) -> bool:
    """True on every rank if ``flag`` is true on all."""
    return _reduce_flag(flag, dist.ReduceOp.MIN)
