"""Watching a run from the values TorchTitan already brings to the host: the divergence guard
(``DivergenceError`` at the first non-finite loss or gradient norm) and progress with an ETA.
``format_duration`` is shared with the trainer's end-of-run summary (``GPATrainer._log_summary``).

TorchTitan's trainer reduces the loss and the gradient norm to host floats only at logging
steps (``[metrics] log_freq``) and hands them to ``MetricsProcessor.log``. ``TrainingMonitor``
wraps that call, so it adds no host-device synchronisation of its own.
"""

from __future__ import annotations

import math
import time
from typing import Any

from torchtitan.tools.logging import logger


class DivergenceError(RuntimeError):
    """The training loss or gradient norm became non-finite; the message says where and why."""


def divergence_message(step: int, what: str, value: float, lr: float | None) -> str:
    lr_text = f" at lr {lr:.3g}" if lr is not None else ""
    return (
        f"training diverged: the {what} is {value} at step {step}{lr_text}. Likely causes: a learning rate too "
        "high for this model and batch (lower [optimizer] lr or lengthen [lr_scheduler] warmup_steps), no gradient "
        "clipping ([training] max_norm), or bad data. No checkpoint of this model was written; the last finite "
        "checkpoint is kept."
    )


class TrainingMonitor:
    """Wraps ``metrics_processor.log``: stops the run at the first non-finite loss or gradient
    norm it sees, and logs ``step N/total`` with an ETA.

    Args:
        metrics_processor: the trainer's TorchTitan MetricsProcessor (its ``log`` is wrapped).
        total_steps (int): ``[training] steps``.
    """

    def __init__(self, metrics_processor, total_steps: int) -> None:
        self.total_steps = total_steps
        self._log = metrics_processor.log
        metrics_processor.log = self.log
        self._start: tuple[int, float] | None = None  # (step, time) of this run's first logged step
        self.last_loss: float | None = None

    def log(self, step: int, global_avg_loss: float, global_max_loss: float, grad_norm: float,
            extra_metrics: dict[str, Any] | None = None) -> None:
        lr = (extra_metrics or {}).get("lr")
        for what, value in (("loss", global_avg_loss), ("maximum loss over ranks", global_max_loss),
                            ("gradient norm", grad_norm)):
            if not math.isfinite(value):
                raise DivergenceError(divergence_message(step, what, value, lr))
        self.last_loss = global_avg_loss
        self._log(step, global_avg_loss, global_max_loss, grad_norm, extra_metrics=extra_metrics)
        now = time.perf_counter()
        if self._start is None:
            self._start = (step, now)
            logger.info(f"step {step}/{self.total_steps}")
            return
        first_step, first_time = self._start
        per_step = (now - first_time) / max(1, step - first_step)
        logger.info(f"step {step}/{self.total_steps}, ETA {format_duration(per_step * (self.total_steps - step))}")


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
