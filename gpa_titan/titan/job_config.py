"""Fields this repo adds to TorchTitan's JobConfig (``--job.custom_config_module gpa_titan.titan.job_config``).

TorchTitan merges these dataclasses into its own, so every field is settable in TOML
(``[optimizer] mu_x = 0.99``) and on the command line (``--optimizer.mu_x 0.99``). The
optimizer fields take their defaults from the optimizer classes, and
``validate_job_config`` checks them at start-up with the optimizers' own checks, naming
the TOML key.
"""

# no `from __future__ import annotations`: TorchTitan reads these fields' types at run time
from dataclasses import dataclass, field, fields

from torchtitan.tools.logging import logger

from gpa_titan.optim import DiLoCoAdamW, GPAAdamW, HyperparameterError, ScheduleFreeAdamW

from .optimizer_registry import EXTRA_FIELDS, OPTIMIZER_NAMES, OPTIMIZERS, default_of, toml_key


class ConfigError(ValueError):
    """A setting is out of range or inconsistent; the message names the key and the fix."""


@dataclass
class Optimizer:
    name: str = "AdamW"
    """Optimizer: "AdamW", "GPA-AdamW", "DiLoCo-AdamW" or "ScheduleFree-AdamW"."""

    mu_x: float = default_of(GPAAdamW, "mu_x")
    """GPA-AdamW: averaging rate of the evaluated weights x, in [0, 1). Table 4 of the
    paper maps DiLoCo's (H, mu) to mu_x = mu**(1/H); 0.9967 = 0.9**(1/32)."""

    mu_y: float = default_of(GPAAdamW, "mu_y")
    """GPA-AdamW: where gradients are taken, y = mu_y x + (1 - mu_y) z, in (0, 1]. The default is
    the CPU tuning study's choice at small scale; the paper (and its configs here) use 0.9."""

    inner_steps: int = default_of(DiLoCoAdamW, "inner_steps")
    """DiLoCo-AdamW: H, the inner AdamW steps between two outer steps (>= 1)."""

    outer_lr: float = default_of(DiLoCoAdamW, "outer_lr")
    """DiLoCo-AdamW: learning rate of the outer Nesterov SGD step (> 0)."""

    outer_momentum: float = default_of(DiLoCoAdamW, "outer_momentum")
    """DiLoCo-AdamW: momentum of the outer Nesterov SGD step, in [0, 1)."""

    warmup_steps: int = default_of(ScheduleFreeAdamW, "warmup_steps")
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

    allow_resume_changes: bool = False
    """Continue the run in this dump folder (and its checkpoint) although settings that change
    its math differ from the ones it was started with; every changed key is logged and
    appended to run_info.json's history. Off: such a launch is refused with the list of keys."""


@dataclass
class JobConfig:
    job: Job = field(default_factory=Job)
    optimizer: Optimizer = field(default_factory=Optimizer)
    model: Model = field(default_factory=Model)
    data: Data = field(default_factory=Data)


OPTIMIZER_FIELD_DEFAULTS = {f.name: f.default for f in fields(Optimizer) if f.name in EXTRA_FIELDS}


def validate_optimizer_config(opt) -> list[str]:
    """Check ``[optimizer]`` with the chosen optimizer's own checks (``ConfigError`` naming the
    TOML key); return warnings for keys of other optimizers set away from their defaults."""
    if opt.name not in OPTIMIZERS:
        raise ConfigError(f"[optimizer] name = {opt.name!r} is not known; choose one of {list(OPTIMIZER_NAMES)}")
    spec = OPTIMIZERS[opt.name]
    try:
        spec.validate(opt)
    except HyperparameterError as e:
        raise ConfigError(
            f"[optimizer] {toml_key(e)} = {e.value!r} is out of range for {opt.name}: it must be {e.requirement}"
        ) from None
    warnings = []
    for key, default in OPTIMIZER_FIELD_DEFAULTS.items():
        owner = EXTRA_FIELDS[key]
        value = getattr(opt, key)
        if owner is not spec and value != default:
            warnings.append(
                f"[optimizer] {key} = {value!r} is ignored: it belongs to {owner.name}, and this run uses "
                f"{opt.name} (remove it, or set it back to its default {default!r}, to silence this warning)"
            )
    return warnings


def validate_job_config(job_config) -> list[str]:
    """Raise ``ConfigError`` naming the TOML key when a setting of ours is out of range;
    log and return warnings about settings that have no effect."""
    warnings = validate_optimizer_config(job_config.optimizer)
    steps = job_config.training.steps
    if steps <= 0:
        raise ConfigError(f"[training] steps = {steps}: a run needs at least one step; set a positive number")
    opt = job_config.optimizer
    if opt.name == "DiLoCo-AdamW" and opt.inner_steps > steps:
        raise ConfigError(
            f"[optimizer] inner_steps = {opt.inner_steps} is larger than [training] steps = {steps}: DiLoCo's outer "
            "step would never run, and the evaluation weights (validated, checkpointed, exported) would stay the "
            "initial ones. Lower inner_steps (the paper uses 8-128 over 12,208 steps) or raise steps."
        )
    if opt.name == "DiLoCo-AdamW" and steps % opt.inner_steps:
        warnings.append(
            f"[optimizer] inner_steps = {opt.inner_steps} does not divide [training] steps = {steps}: the last "
            f"{steps % opt.inner_steps} inner steps are never folded into the outer (evaluation) weights"
        )
    if job_config.job.stop_after_steps == 0 or job_config.job.stop_after_steps < -1:
        raise ConfigError(f"[job] stop_after_steps = {job_config.job.stop_after_steps} must be -1 or >= 1")
    if job_config.model.vocab_size != -1 and job_config.model.vocab_size < 1:
        raise ConfigError(f"[model] vocab_size = {job_config.model.vocab_size} must be -1 (the flavor's) or >= 1")
    if job_config.validation.enable and job_config.validation.steps < 1:
        raise ConfigError(
            f"[validation] steps = {job_config.validation.steps}: set a positive number of batches; "
            "the validation set is fixed (the same batches at every evaluation), so it needs a size"
        )
    for warning in warnings:
        logger.warning(warning)
    return warnings
