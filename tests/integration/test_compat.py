"""The CPU/gloo compatibility layer (only applied when no accelerator is present)."""

import subprocess
import sys

import torch

from helpers import REPO

CODE = r"""
import torch
import torchtitan.tools.utils as tt_utils
import torchtitan.components.metrics as metrics
import torchtitan.distributed.parallel_dims as parallel_dims
import torchtitan.distributed.utils as dist_utils
assert tt_utils.device_type == "cuda", "TorchTitan binds cuda when no accelerator is found"
from gpa_titan.titan.cpu_compat import apply_cpu_compat, CPUMemoryMonitor
assert apply_cpu_compat() is True and apply_cpu_compat() is True
assert tt_utils.device_type == dist_utils.device_type == parallel_dims.device_type == "cpu"
assert tt_utils.device_module is torch.cpu and dist_utils.device_module is torch.cpu
monitor = metrics.build_device_memory_monitor()
assert isinstance(monitor, CPUMemoryMonitor) and monitor.device_capacity_gib > 0
x = torch.ones(64 * 2**20 // 4)  # 64 MiB
stats = monitor.get_peak_stats()
assert stats.max_reserved_gib > 0.06 and 0 < stats.max_reserved_pct < 100
assert dist_utils.set_pg_timeouts.__name__ == "_set_pg_timeouts_cpu"
print("OK")
"""


def test_cpu_compat_layer_in_a_fresh_process():
    if torch.accelerator.is_available():  # on GPU machines the layer must do nothing
        from gpa_titan.titan.cpu_compat import apply_cpu_compat

        assert apply_cpu_compat() is False
        return
    proc = subprocess.run([sys.executable, "-c", CODE], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip().endswith("OK"), proc.stdout + proc.stderr
