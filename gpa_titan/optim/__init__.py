"""The optimizers of arXiv 2512.17131 in plain PyTorch (no TorchTitan), each next to a
float64 reference implementation (``reference.py``)."""

from .base import EvalModeOptimizer
from .diloco_adamw import DiLoCoAdamW
from .gpa_adamw import GPAAdamW
from .hyperparameters import HyperparameterError
from .schedule_free import ScheduleFreeAdamW

__all__ = ["EvalModeOptimizer", "GPAAdamW", "DiLoCoAdamW", "ScheduleFreeAdamW", "HyperparameterError"]
