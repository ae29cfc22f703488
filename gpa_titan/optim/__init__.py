"""The optimizers of arXiv 2512.17131, each next to a plain reference implementation."""

from .diloco_adamw import DiLoCoAdamW
from .gpa_adamw import GPAAdamW
from .schedule_free import ScheduleFreeAdamW

__all__ = ["GPAAdamW", "DiLoCoAdamW", "ScheduleFreeAdamW"]
