"""Fields this repo adds to TorchTitan's JobConfig (``--job.custom_config_module gpa_titan.titan.job_config``).

TorchTitan merges these dataclasses into its own, so every field is settable in TOML
(``[optimizer] mu_x = 0.99``) and on the command line (``--optimizer.mu_x 0.99``). The
optimizer fields take their defaults from the optimizer classes. ``validate_job_config``
runs the start-up checks of every setting, these and TorchTitan's (``start_checks.CHECKS``),
naming the TOML key.
"""

# no `from __future__ import annotations`: TorchTitan reads these fields' types at run time
from dataclasses import dataclass, field

from torchtitan.tools.logging import logger

from gpa_titan.optim import DiLoCoAdamW, GPAAdamW, ScheduleFreeAdamW
from gpa_titan.optim.muon import Muon
from gpa_titan.optim.registry import default_of

from .start_checks import (  # noqa: F401  (ConfigError, validate_optimizer_config: imported from here too)
    OPTIMIZER_FIELD_DEFAULTS,
    ConfigError,
    run_start_checks,
    validate_optimizer_config,
)


@dataclass
class Optimizer:
    name: str = "AdamW"
    """Optimizer: "AdamW", "GPA-AdamW", "DiLoCo-AdamW", "ScheduleFree-AdamW", "Muon" or "GPA-Muon"
    (Muon on 2-D hidden weights, AdamW on embeddings, output and norms; GPA-Muon: GPA over it)."""

    mu_x: float = default_of(GPAAdamW, "mu_x")
    """GPA-AdamW, GPA-Muon: averaging rate of the evaluated weights x, in [0, 1). Table 4 of the
    paper maps DiLoCo's (H, mu) to mu_x = mu**(1/H); 0.9967 = 0.9**(1/32)."""

    mu_y: float = default_of(GPAAdamW, "mu_y")
    """GPA-AdamW, GPA-Muon: where gradients are taken, y = mu_y x + (1 - mu_y) z, in (0, 1]. The default is
    the paper's Llama value, 0.9 (the demo config uses the CPU study's 0.2, a small-scale finding)."""

    inner_steps: int = default_of(DiLoCoAdamW, "inner_steps")
    """DiLoCo-AdamW: H, the inner AdamW steps between two outer steps (>= 1)."""

    outer_lr: float = default_of(DiLoCoAdamW, "outer_lr")
    """DiLoCo-AdamW: learning rate of the outer Nesterov SGD step (> 0)."""

    outer_momentum: float = default_of(DiLoCoAdamW, "outer_momentum")
    """DiLoCo-AdamW: momentum of the outer Nesterov SGD step, in [0, 1)."""

    warmup_steps: int = default_of(ScheduleFreeAdamW, "warmup_steps")
    """ScheduleFree-AdamW: its internal learning-rate warmup (use with a constant
    [lr_scheduler]); 0 leaves the schedule to [lr_scheduler]."""

    momentum: float = default_of(Muon, "momentum")
    """Muon, GPA-Muon: Muon's momentum, in [0, 1) (torch.optim.Muon's 0.95)."""

    nesterov: bool = default_of(Muon, "nesterov")
    """Muon, GPA-Muon: Nesterov momentum (torch.optim.Muon's true)."""

    ns_steps: int = default_of(Muon, "ns_steps")
    """Muon, GPA-Muon: Newton-Schulz iterations, 1 to 99 (torch.optim.Muon's 5)."""

    adjust_lr_fn: str = default_of(Muon, "adjust_lr_fn")
    """Muon, GPA-Muon: how a matrix's lr is scaled by its shape: "original" (torch.optim.Muon's
    default, sqrt(max(1, rows/cols))) or "match_rms_adamw" (0.2 sqrt(max(rows, cols)): the update's
    RMS matches AdamW's, so one lr suits the Muon and the AdamW parameters)."""

    adamw_lr: float = default_of(Muon, "adamw_lr")
    """Muon, GPA-Muon: learning rate of the parameters that take AdamW (embeddings, output,
    norms), scheduled like lr; -1: the same as lr."""

    adamw_weight_decay: float = default_of(Muon, "adamw_weight_decay")
    """Muon, GPA-Muon: weight decay of the parameters that take AdamW; -1: the same as
    weight_decay."""


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


def validate_job_config(job_config, world_size: int | None = None, environ=None) -> list[str]:
    """Run the start-up checks (``start_checks.CHECKS``, TorchTitan's keys included): raise
    ``ConfigError`` naming the TOML key, its value and the fix for the first setting that is out
    of range or inconsistent; log and return warnings about settings that have no effect.

    Args:
        job_config: the parsed JobConfig.
        world_size (int | None): the number of ranks; None: ``WORLD_SIZE`` (1 when unset).
        environ (Mapping | None): the environment (``GPA_PREEMPT_SIGNAL``); None: ``os.environ``.
    """
    warnings = run_start_checks(job_config, world_size, environ)
    for warning in warnings:
        logger.warning(warning)
    return warnings
