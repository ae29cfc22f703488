"""The optimizers of arXiv 2512.17131 in plain PyTorch (no TorchTitan), each next to a
float64 reference implementation (``reference.py``): GPA-AdamW (the fused fast path), GPA over
any base optimizer (``GPA``, ``GPAMuon``), DiLoCo-AdamW, Schedule-Free AdamW, and Muon on FSDP2
shards."""

from .base import EvalModeOptimizer
from .diloco_adamw import DiLoCoAdamW
from .gpa import GPA
from .gpa_adamw import GPAAdamW
from .gpa_muon import GPAMuon
from .hyperparameters import HyperparameterError
from .muon import Muon
from .schedule_free import ScheduleFreeAdamW

__all__ = [
    "EvalModeOptimizer", "GPA", "GPAAdamW", "GPAMuon", "DiLoCoAdamW", "Muon", "ScheduleFreeAdamW",
    "HyperparameterError",
]
