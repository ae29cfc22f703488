"""Fields this repo adds to TorchTitan's JobConfig (``--job.custom_config_module gpa_titan.config``).

TorchTitan merges these dataclasses into its own, so every field is settable in TOML
(``[optimizer] mu_x = 0.99``) and on the command line (``--optimizer.mu_x 0.99``).
``validate_job_config`` checks them at start-up and names the offending key.
"""


import math
from dataclasses import dataclass, field

OPTIMIZER_NAMES = ("AdamW", "GPA-AdamW", "DiLoCo-AdamW", "ScheduleFree-AdamW")


@dataclass
class Optimizer:
    name: str = "AdamW"
    """Optimizer: "AdamW", "GPA-AdamW", "DiLoCo-AdamW" or "ScheduleFree-AdamW"."""

    mu_x: float = 0.9967
    """GPA-AdamW: averaging rate of the evaluated weights x, in [0, 1). Table 4 of the
    paper maps DiLoCo's (H, mu) to mu_x = mu**(1/H); 0.9967 = 0.9**(1/32)."""

    mu_y: float = 0.9
    """GPA-AdamW: where gradients are taken, y = mu_y x + (1 - mu_y) z, in (0, 1]."""

    inner_steps: int = 32
    """DiLoCo-AdamW: H, the inner AdamW steps between two outer steps (>= 1)."""

    outer_lr: float = 0.75
    """DiLoCo-AdamW: learning rate of the outer Nesterov SGD step (> 0)."""

    outer_momentum: float = 0.9
    """DiLoCo-AdamW: momentum of the outer Nesterov SGD step, in [0, 1)."""

    warmup_steps: int = 0
    """ScheduleFree-AdamW: its internal learning-rate warmup (use with a constant
    [lr_scheduler]); 0 leaves the schedule to [lr_scheduler]."""


@dataclass
class Model:
    vocab_size: int = -1
    """Vocabulary size of the embedding and output layers; -1 keeps the flavor's own.
    Set it when you pair a flavor with another tokenizer (it must be at least the
    tokenizer's size; round up to a multiple of 64 for speed)."""


@dataclass
class Data:
    demo_documents: int = 3000
    """Documents in the generated demo corpus (dataset "demo" only)."""


@dataclass
class Job:
    stop_after_steps: int = -1
    """End this run after this many steps, with a checkpoint (when [checkpoint] enable);
    the LR schedule still spans [training] steps, and a rerun continues from there.
    -1: run to [training] steps. For time-limited allocations and smoke tests."""


@dataclass
class JobConfig:
    job: Job = field(default_factory=Job)
    optimizer: Optimizer = field(default_factory=Optimizer)
    model: Model = field(default_factory=Model)
    data: Data = field(default_factory=Data)


def validate_job_config(job_config) -> None:
    """Raise a ValueError naming the TOML key when a setting of ours is out of range."""
    opt = job_config.optimizer
    if opt.name not in OPTIMIZER_NAMES:
        raise ValueError(
            f"[optimizer] name = {opt.name!r} is not known; choose one of {list(OPTIMIZER_NAMES)}"
        )

    def check(key: str, value: float, ok: bool, allowed: str) -> None:
        if not ok or (isinstance(value, float) and math.isnan(value)):
            raise ValueError(f"[optimizer] {key} = {value!r} is out of range: it must be {allowed}")

    check("lr", opt.lr, opt.lr >= 0, ">= 0")
    check("beta1", opt.beta1, 0 <= opt.beta1 < 1, "in [0, 1)")
    check("beta2", opt.beta2, 0 <= opt.beta2 < 1, "in [0, 1)")
    check("eps", opt.eps, opt.eps > 0, "> 0")
    check("weight_decay", opt.weight_decay, opt.weight_decay >= 0, ">= 0")
    if opt.name == "GPA-AdamW":
        check("mu_x", opt.mu_x, 0 <= opt.mu_x < 1, "in [0, 1)")
        check("mu_y", opt.mu_y, 0 < opt.mu_y <= 1, "in (0, 1] (mu_y = 0 is not supported)")
    if opt.name == "DiLoCo-AdamW":
        check("inner_steps", opt.inner_steps, isinstance(opt.inner_steps, int) and opt.inner_steps >= 1, "an integer >= 1")
        check("outer_lr", opt.outer_lr, opt.outer_lr > 0, "> 0")
        check("outer_momentum", opt.outer_momentum, 0 <= opt.outer_momentum < 1, "in [0, 1)")
    if opt.name == "ScheduleFree-AdamW":
        check("warmup_steps", opt.warmup_steps, opt.warmup_steps >= 0, ">= 0")
    if job_config.job.stop_after_steps == 0 or job_config.job.stop_after_steps < -1:
        raise ValueError(f"[job] stop_after_steps = {job_config.job.stop_after_steps} must be -1 or >= 1")
    if job_config.model.vocab_size != -1 and job_config.model.vocab_size < 1:
        raise ValueError(f"[model] vocab_size = {job_config.model.vocab_size} must be -1 (the flavor's) or >= 1")
    if job_config.validation.enable and job_config.validation.steps < 1:
        raise ValueError(
            f"[validation] steps = {job_config.validation.steps}: set a positive number of batches; "
            "the validation set is fixed (the same batches at every evaluation), so it needs a size"
        )
