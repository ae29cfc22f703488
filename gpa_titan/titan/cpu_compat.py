"""Running TorchTitan 0.2.2's Trainer on a machine without an accelerator.

TorchTitan 0.2.2 assumes CUDA in a few places. Everything this repo changes to run its
unmodified Trainer on CPU with gloo lives here, and ``apply_cpu_compat()`` does it only
when no accelerator is present (on a GPU machine it changes nothing):

1. ``torchtitan.tools.utils`` binds ``device_type = "cuda"`` at import when no
   accelerator is found, and several modules copy that name. We point all of them at
   ``"cpu"`` and ``torch.cpu`` (which has ``set_device``/``current_device``/``synchronize``),
   so the device mesh is a CPU mesh and the default process-group backend is gloo.
2. The device memory monitor calls CUDA-only ``memory_stats``/``get_device_properties``;
   we replace its builder with one that reports the process's peak resident memory.
3. ``set_pg_timeouts`` (the shorter timeout after step 1) issues
   ``barrier(device_ids=[...])``, which only NCCL accepts, and re-timing live gloo groups
   crashed ranks intermittently; on CPU the start-up timeout simply stays in force.
4. FSDP2 reduce-scatters gradients with ``ReduceOp.PREMUL_SUM`` (TorchTitan sets a
   divide factor of 1), which gloo does not implement. ``cpu_safe_parallelize`` wraps a
   parallelize function and asks every FSDP module for plain SUM reductions; the
   gradient values are identical.
"""

from __future__ import annotations

import functools
import resource
from collections.abc import Callable
from datetime import timedelta

import torch
import torch.nn as nn

_applied = False


def has_accelerator() -> bool:
    return torch.accelerator.is_available()


class CPUMemoryMonitor:
    """Stands in for TorchTitan's DeviceMemoryMonitor on CPU: peak resident set size."""

    device_name = "CPU"

    def __init__(self) -> None:
        self.capacity = self._total_bytes()
        self.device_capacity_gib = self.capacity / 2**30

    @staticmethod
    def _total_bytes() -> int:
        try:
            with open("/proc/meminfo") as f:
                for line in f:
                    if line.startswith("MemTotal:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def get_peak_stats(self):
        from torchtitan.components.metrics import DeviceMemStats

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
        gib = peak / 2**30
        pct = 100.0 * peak / self.capacity if self.capacity else 0.0
        return DeviceMemStats(gib, pct, gib, pct, 0, 0)

    def reset_peak_stats(self) -> None:
        pass  # the peak RSS of a process cannot be reset


def _set_pg_timeouts_cpu(timeout: timedelta, parallel_dims) -> None:
    """On CPU, keep the start-up timeouts: TorchTitan's set_pg_timeouts calls an NCCL-only
    ``barrier(device_ids=...)``, and changing a live gloo group's timeout mid-run
    (``_set_pg_timeout``) crashed ranks intermittently in our tests ("terminate called
    without an active exception"). The shorter timeout only speeds up hang detection."""
    return None


def apply_cpu_compat() -> bool:
    """Apply the adjustments above if no accelerator is present. Idempotent.

    Returns True when they are in effect.
    """
    global _applied
    if has_accelerator():
        return False
    if _applied:
        return True
    import torchtitan.components.metrics as metrics
    import torchtitan.distributed.parallel_dims as parallel_dims
    import torchtitan.distributed.utils as dist_utils
    import torchtitan.tools.profiling as profiling
    import torchtitan.tools.utils as tt_utils

    for module in (tt_utils, metrics, parallel_dims, dist_utils, profiling):
        if hasattr(module, "device_type"):
            module.device_type = "cpu"
        if hasattr(module, "device_module"):
            module.device_module = torch.cpu
    metrics.build_device_memory_monitor = CPUMemoryMonitor
    dist_utils.set_pg_timeouts = _set_pg_timeouts_cpu
    _applied = True
    return True


def force_sum_reductions(model: nn.Module) -> None:
    """Ask every FSDP2 module for SUM-only collectives (gloo has no PREMUL_SUM/AVG)."""
    from torch.distributed.fsdp import FSDPModule

    for module in model.modules():
        if isinstance(module, FSDPModule):
            module.set_force_sum_reduction_for_comms(True)


def cpu_safe_parallelize(parallelize_fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Wrap a TrainSpec parallelize function so FSDP2 works on gloo when on CPU."""

    @functools.wraps(parallelize_fn)
    def parallelize(model: nn.Module, parallel_dims, job_config) -> nn.Module:
        model = parallelize_fn(model, parallel_dims, job_config)
        if not has_accelerator():
            force_sum_reductions(model)
        return model

    return parallelize
