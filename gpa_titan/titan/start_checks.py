"""Every setting a run depends on, checked at start-up: one table, ``CHECKS``.

TorchTitan checks few of its keys, and late or not at all: ``[metrics] log_freq = 0`` is a
ZeroDivisionError after step 1, a global batch that is not a multiple of local batch x
data-parallel ranks an assertion once the model is built, and some values run to "Run complete"
doing something else than asked (``[lr_scheduler] min_lr_factor = -1`` ends with a negative
learning rate, ``[training] max_norm = 0`` clips every gradient to zero while the logged
grad_norm, taken before clipping, looks normal). ``run_start_checks`` runs the table's rows in
order before TorchTitan's Trainer starts and raises ``ConfigError`` for the first that fails,
with one message ``[section] key = <value> <what is wrong>; <fix>``; ``gpa_titan.titan.main``
prints it as ``error: <message>`` and exits with code 2. Rows that only warn add to the
returned warnings.

A row is a ``Setting`` (one key, a predicate on its value, what is wrong in words, the fix, and
when the key is used) or a ``Rule`` (a check across keys, the number of ranks or the
environment, written as a function that returns the message). The number of ranks is
``WORLD_SIZE`` (set by torchrun, and to 1 by ``gpa_titan.train`` without it); the parallel
degrees are resolved from it as TorchTitan's ``ParallelDims`` does.
"""

from __future__ import annotations

import math
import os
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gpa_titan.optim import HyperparameterError
from gpa_titan.optim.registry import EXTRA_FIELDS, OPTIMIZER_NAMES, OPTIMIZERS, field_default, owners_text, toml_key

from .models import FLAVORS

MODEL_NAME = "gpa_llama3"  # the TrainSpec of gpa_titan.titan.spec (not imported here: it registers itself)
PREEMPT_SIGNAL_VAR = "GPA_PREEMPT_SIGNAL"
ENV_DEFAULTS = {PREEMPT_SIGNAL_VAR: "SIGUSR1"}


class ConfigError(ValueError):
    """A setting is out of range or inconsistent; the message names the key and the fix."""


# ------------------------------------------------------------------------------------------ rows
@dataclass
class Run:
    """What the rows check: the parsed JobConfig, the number of ranks and the environment."""

    config: Any
    world_size: int = 1
    environ: Mapping[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def value(self, key: str) -> Any:
        """The value of a dotted JobConfig key, or of ``$VARIABLE`` (its default when unset)."""
        if key.startswith("$"):
            return self.environ.get(key[1:], ENV_DEFAULTS[key[1:]])
        value = self.config
        for part in key.split("."):
            value = getattr(value, part)
        return value


def display(key: str) -> str:
    """``training.dataloader.num_workers`` -> ``[training.dataloader] num_workers``;
    ``$NAME`` -> ``the environment variable NAME``."""
    if key.startswith("$"):
        return f"the environment variable {key[1:]}"
    table, _, name = key.rpartition(".")
    return f"[{table}] {name}"


def shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, str) else str(value)


def message(key: str, value: Any, wrong: str, fix: str = "") -> str:
    """``[section] key = <value> <what is wrong>; <fix>`` (``wrong`` may start with ``:``)."""
    text = f"{display(key)} = {shown(value)}{'' if wrong.startswith(':') else ' '}{wrong}"
    return f"{text}; {fix}" if fix else text


@dataclass(frozen=True)
class Setting:
    """One key checked alone.

    Args:
        key (str): the dotted JobConfig key (``lr_scheduler.min_lr_factor``).
        ok (Callable): whether a value is acceptable.
        wrong (str): what is wrong with a value that is not, and what it would break.
        fix (str): what to do instead.
        when (Callable | None): the key is checked only when this holds (e.g. ``[checkpoint]
            enable``); None: always.
    """

    key: str
    ok: Callable[[Any], bool]
    wrong: str
    fix: str
    when: Callable[[Run], bool] | None = None

    @property
    def name(self) -> str:
        return self.key

    def check(self, run: Run) -> str | None:
        if self.when is not None and not self.when(run):
            return None
        value = run.value(self.key)
        return None if self.ok(value) else message(self.key, value, self.wrong, self.fix)


@dataclass(frozen=True)
class Rule:
    """A check across keys, the ranks or the environment.

    Args:
        name (str): the row's name (the key its message names, and what it is checked against).
        requirement (str): the requirement, in words.
        fix (str): the fix, in words (the message says it with the numbers of the launch).
        function (Callable): returns the message (``message(...)``) or None; may add warnings
            to ``run.warnings``.
    """

    name: str
    requirement: str
    fix: str
    function: Callable[[Run], str | None]

    def check(self, run: Run) -> str | None:
        return self.function(run)


# ------------------------------------------------------------------------------------ predicates
def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v)


def at_least(low: int) -> Callable[[Any], bool]:
    return lambda v: _is_int(v) and v >= low


def minus_one_or_at_least(low: int) -> Callable[[Any], bool]:
    return lambda v: _is_int(v) and (v == -1 or v >= low)


def positive_finite(v: Any) -> bool:
    return _is_real(v) and math.isfinite(v) and v > 0


def in_unit_interval(v: Any) -> bool:
    return _is_real(v) and 0 <= v <= 1


def checkpoints_on(run: Run) -> bool:
    return run.config.checkpoint.enable


def checkpoints_off(run: Run) -> bool:
    return not run.config.checkpoint.enable


def validation_on(run: Run) -> bool:
    return run.config.validation.enable


def ours(run: Run) -> bool:
    return run.config.model.name == MODEL_NAME


# ---------------------------------------------------------------------------- the optimizer's keys
OPTIMIZER_FIELD_DEFAULTS = {key: field_default(key) for key in EXTRA_FIELDS}  # its owners agree on it


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
        value = getattr(opt, key)
        if spec not in EXTRA_FIELDS[key] and value != default:
            warnings.append(
                f"[optimizer] {key} = {value!r} is ignored: it belongs to {owners_text(key)}, and this run uses "
                f"{opt.name} (remove it, or set it back to its default {default!r}, to silence this warning)"
            )
    return warnings


def optimizer_ranges(run: Run) -> str | None:
    try:
        run.warnings.extend(validate_optimizer_config(run.config.optimizer))
    except ConfigError as e:
        return str(e)
    return None


def diloco_period(run: Run) -> str | None:
    opt, steps = run.config.optimizer, run.config.training.steps
    if opt.name != "DiLoCo-AdamW" or steps < 1:
        return None
    if opt.inner_steps > steps:
        return message(
            "optimizer.inner_steps", opt.inner_steps,
            f"is larger than [training] steps = {steps}: DiLoCo's outer step would never run, and the evaluation "
            "weights (validated, checkpointed, exported) would stay the initial ones",
            "lower inner_steps (the paper uses 8-128 over 12,208 steps) or raise steps",
        )
    if steps % opt.inner_steps:
        run.warnings.append(
            f"[optimizer] inner_steps = {opt.inner_steps} does not divide [training] steps = {steps}: the last "
            f"{steps % opt.inner_steps} inner steps are never folded into the outer (evaluation) weights"
        )
    return None


# ------------------------------------------------------------------------------------ the schedule
def schedule_steps(config) -> int:
    """The steps TorchTitan's schedule spans: ``[lr_scheduler] total_steps`` or ``[training] steps``."""
    total = config.lr_scheduler.total_steps
    return config.training.steps if total is None else total


def schedule_length(run: Run) -> str | None:
    total, steps = run.config.lr_scheduler.total_steps, run.config.training.steps
    if total is None or (_is_int(total) and total >= steps):
        return None
    return message(
        "lr_scheduler.total_steps", total,
        f"is below [training] steps = {steps}: the schedule ends before the run does, and past its end the linear "
        "and sqrt decays keep going, below lr x min_lr_factor to negative learning rates (the cosine one climbs back "
        "to lr)",
        f"remove it (the schedule then spans [training] steps) or set it to at least {steps}",
    )


def warmup_length(run: Run) -> str | None:
    warmup, total = run.config.lr_scheduler.warmup_steps, schedule_steps(run.config)
    if _is_int(warmup) and _is_int(total) and total >= 1 and warmup >= total:
        run.warnings.append(
            message(
                "lr_scheduler.warmup_steps", warmup,
                f"is not below the {total} steps of the schedule: the whole run is warmup and the learning rate "
                "never decays (TorchTitan caps the warmup at the schedule's steps)",
                f"lower it, e.g. to {max(total // 10, 1)} (10% of the steps), if that is not what you meant",
            )
        )
    return None


# ---------------------------------------------------------------------------- checkpoints, profiling
def stop_needs_checkpoints(run: Run) -> str | None:
    stop = run.config.job.stop_after_steps
    if run.config.checkpoint.enable or not (_is_int(stop) and stop >= 1):
        return None
    return message(
        "job.stop_after_steps", stop,
        "with [checkpoint] enable = false: it ends the run early so that a rerun continues it from a checkpoint, "
        "and with checkpoints off nothing is saved (the steps trained are lost)",
        f"add --checkpoint.enable, or set --training.steps {stop} for a short run (its schedule then spans {stop} "
        "steps)",
    )


def seed_checkpoint(run: Run) -> str | None:
    ckpt = run.config.checkpoint
    if not ckpt.create_seed_checkpoint:
        return None
    if not ckpt.enable:
        return message(
            "checkpoint.create_seed_checkpoint", True,
            "needs [checkpoint] enable = true: TorchTitan asserts it after building the model",
            "add --checkpoint.enable",
        )
    if run.world_size != 1:
        return message(
            "checkpoint.create_seed_checkpoint", True,
            f"needs one rank, and this launch has WORLD_SIZE = {run.world_size}: the seed checkpoint is written "
            "unsharded (TorchTitan asserts it after building the model)",
            "run it as one process (python -m gpa_titan.train ..., or torchrun --nproc_per_node=1)",
        )
    return None


def profiler_schedule(run: Run) -> str | None:
    p = run.config.profiling
    if p.enable_profiling:
        if not at_least(1)(p.profiler_active):
            return message("profiling.profiler_active", p.profiler_active,
                           "must be at least 1: it is the number of steps each trace records",
                           "set a positive number, e.g. 1")
        if not at_least(0)(p.profiler_warmup):
            return message("profiling.profiler_warmup", p.profiler_warmup, "is negative",
                           "set 0 or a positive number of steps, e.g. 3")
        cycle = p.profiler_warmup + p.profiler_active
        if not (_is_int(p.profile_freq) and p.profile_freq >= cycle):
            return message(
                "profiling.profile_freq", p.profile_freq,
                f"is below profiler_warmup + profiler_active = {p.profiler_warmup} + {p.profiler_active} = {cycle}: "
                "TorchTitan's profiler schedule asserts it when training starts",
                f"set profile_freq to at least {cycle}, or lower profiler_warmup",
            )
    if p.enable_memory_snapshot and not at_least(1)(p.profile_freq):
        return message("profiling.profile_freq", p.profile_freq,
                       "must be at least 1 with [profiling] enable_memory_snapshot: snapshots are taken every "
                       "profile_freq steps (0 fails with a ZeroDivisionError)",
                       "set a positive number of steps, e.g. 10")
    return None


# ------------------------------------------------------------------------------ ranks and batches
DEGREES = ("data_parallel_replicate_degree", "tensor_parallel_degree", "pipeline_parallel_degree",
           "context_parallel_degree")


def data_parallel_ranks(config, world_size: int) -> int:
    """``data_parallel_replicate_degree x data_parallel_shard_degree``, with a shard degree of -1
    filled from ``world_size`` as TorchTitan's ``ParallelDims`` does."""
    par = config.parallelism
    others = math.prod(getattr(par, d) for d in DEGREES)
    shard = par.data_parallel_shard_degree
    if shard == -1:
        shard = world_size // others
    return par.data_parallel_replicate_degree * shard


def degrees_fill_the_ranks(run: Run) -> str | None:
    par, world = run.config.parallelism, run.world_size
    others = math.prod(getattr(par, d) for d in DEGREES)
    names = " x ".join(DEGREES)
    values = " x ".join(str(getattr(par, d)) for d in DEGREES)
    shard = par.data_parallel_shard_degree
    if shard == -1:
        if world % others == 0:
            return None
        return message(
            "parallelism.data_parallel_shard_degree", -1,
            f"cannot fill the ranks: this launch has WORLD_SIZE = {world}, which is not a multiple of {names} = "
            f"{values} = {others}",
            f"launch a multiple of {others} ranks, or lower those degrees to divide {world}",
        )
    total = others * shard
    if total == world:
        return None
    return message(
        "parallelism.data_parallel_shard_degree", shard,
        f"makes {names} x data_parallel_shard_degree = {values} x {shard} = {total} ranks, but this launch has "
        f"WORLD_SIZE = {world} (TorchTitan asserts that they match when it builds its device mesh)",
        f"set data_parallel_shard_degree = -1 (it takes the ranks the other degrees leave), or launch {total} ranks "
        f"(torchrun --nproc_per_node={total})",
    )


def global_batch(run: Run) -> str | None:
    t = run.config.training
    gbs, local = t.global_batch_size, t.local_batch_size
    if gbs == -1:
        return None
    dp = data_parallel_ranks(run.config, run.world_size)
    per_step = local * dp
    if _is_int(gbs) and gbs >= 1 and gbs % per_step == 0:
        return None
    lower = gbs // per_step * per_step if _is_int(gbs) and gbs >= per_step else per_step
    examples = " or ".join(str(m) for m in dict.fromkeys((lower, lower + per_step)))
    fix = f"set it to -1 ({per_step} sequences per step) or a multiple of {per_step}, e.g. {examples}"
    if not (_is_int(gbs) and gbs >= 1):
        wrong = "must be -1 (local_batch_size x data-parallel ranks) or a positive number of sequences per step"
    else:
        wrong = (
            f"is not a multiple of local_batch_size x data-parallel ranks = {local} x {dp} = {per_step} (WORLD_SIZE "
            f"= {run.world_size}): each step accumulates global_batch_size / {per_step} micro-batches, and TorchTitan "
            "asserts that this is a whole number once the model is built"
        )
        if gbs % dp == 0:
            fix += f", or set local_batch_size to a divisor of {gbs // dp}"
    return message("training.global_batch_size", gbs, wrong, fix)


def heads_split_evenly(run: Run) -> str | None:
    tp, flavor = run.config.parallelism.tensor_parallel_degree, run.config.model.flavor
    if tp == 1 or not ours(run) or flavor not in FLAVORS:
        return None
    args = FLAVORS[flavor]
    heads, kv_heads = args.n_heads, args.n_kv_heads or args.n_heads
    if heads % tp == 0 and kv_heads % tp == 0:
        return None
    common = math.gcd(heads, kv_heads)
    divisors = [str(d) for d in range(1, common + 1) if common % d == 0]
    return message(
        "parallelism.tensor_parallel_degree", tp,
        f"does not divide the {heads} attention heads and {kv_heads} key/value heads of flavor {flavor!r}: each "
        "tensor-parallel rank must hold whole heads",
        f"set one of {', '.join(divisors)}",
    )


def seq_len_splits(run: Run) -> str | None:
    par, seq_len = run.config.parallelism, run.config.training.seq_len
    divisor = 2 * par.tensor_parallel_degree * par.context_parallel_degree
    if not ours(run) or seq_len % divisor == 0:
        return None
    lower = seq_len // divisor * divisor
    examples = " or ".join(str(m) for m in (lower, lower + divisor) if m > 0)
    return message(
        "training.seq_len", seq_len,
        f"is not a multiple of 2 x tensor_parallel_degree x context_parallel_degree = 2 x "
        f"{par.tensor_parallel_degree} x {par.context_parallel_degree} = {divisor}: TorchTitan's Llama "
        "parallelization asserts it once the model is built",
        f"set a multiple of {divisor}, e.g. {examples}",
    )


def microbatches(run: Run) -> str | None:
    par, local = run.config.parallelism, run.config.training.local_batch_size
    size = par.pipeline_parallel_microbatch_size
    if par.pipeline_parallel_degree == 1 or (at_least(1)(size) and local % size == 0):
        return None
    return message(
        "parallelism.pipeline_parallel_microbatch_size", size,
        f"does not divide [training] local_batch_size = {local}: each pipeline step splits the local batch into "
        "micro-batches of this size (TorchTitan refuses it once the model is built)",
        f"set a divisor of {local}, e.g. 1",
    )


def validation_fits_the_model(run: Run) -> str | None:
    val, train = run.config.validation.seq_len, run.config.training.seq_len
    if not validation_on(run) or val <= train:
        return None
    return message(
        "validation.seq_len", val,
        f"is longer than [training] seq_len = {train}: the model's rotary embedding is built for the training "
        "length, so the first validation would fail after step 1",
        f"set it to at most {train} (usually equal)",
    )


# ------------------------------------------------------------------------------- the environment
CAUGHT_ELSEWHERE = {
    "SIGKILL": "SIGKILL cannot be caught",
    "SIGSTOP": "SIGSTOP cannot be caught",
    "SIGINT": "Ctrl-C and torchrun stop the processes with SIGINT, and that stop must not wait for a logging step",
    "SIGTERM": "torchrun and Slurm (scancel, the time limit) stop the processes with SIGTERM, and that stop must not "
    "wait for a logging step",
    "SIGHUP": "torchrun ends the whole job on SIGHUP (its TORCHELASTIC_SIGNALS_TO_HANDLE), before the trainer can save",
    "SIGQUIT": "torchrun ends the whole job on SIGQUIT (its TORCHELASTIC_SIGNALS_TO_HANDLE), before the trainer can "
    "save",
}
NOT_A_REQUEST = ("SIGCHLD", "SIGPIPE", "SIGSEGV", "SIGBUS", "SIGFPE", "SIGILL", "SIGABRT", "SIGTRAP", "SIGSYS",
                 "SIGWINCH", "SIGURG", "SIGIO", "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGCONT", "SIGPROF", "SIGALRM",
                 "SIGVTALRM", "SIGXFSZ", "SIGSTKFLT")


def preemption_signal(run: Run) -> str | None:
    """``GPA_PREEMPT_SIGNAL`` must name a signal that a scheduler sends to ask for a stop and that
    nothing else sends: not one the launchers end the processes with (SIGINT, SIGTERM: a handler
    would defer their stop to the next logging step; SIGHUP, SIGQUIT: torchrun ends the job on
    them before the trainer could save), and not one the kernel or the process raises for other
    reasons (SIGCHLD from every DataLoader worker that exits, faults, terminal and timer
    signals), which would stop the run unasked. That leaves SIGUSR1 (the default), SIGUSR2,
    SIGXCPU, SIGPWR and the real-time signals."""
    key, name = f"${PREEMPT_SIGNAL_VAR}", run.value(f"${PREEMPT_SIGNAL_VAR}")
    default = ENV_DEFAULTS[PREEMPT_SIGNAL_VAR]
    fix = f"unset it for {default} (what slurm/train.sbatch asks Slurm for, --signal=USR1@180), or name SIGUSR2"
    if name not in signal.Signals.__members__:
        guess = "SIG" + name.upper().removeprefix("SIG")
        if guess in signal.Signals.__members__:
            fix = f"write it {guess}"
        return message(key, name, "is not a signal name of Python's signal module", fix)
    canonical = signal.Signals[name].name
    if canonical in CAUGHT_ELSEWHERE:
        return message(key, name, f"cannot ask for a preemption checkpoint: {CAUGHT_ELSEWHERE[canonical]}", fix)
    if canonical in NOT_A_REQUEST:
        return message(key, name, "cannot ask for a preemption checkpoint: the kernel or the process itself raises "
                       "it for other reasons (a child exiting, a fault, a terminal or timer event), which would stop "
                       "the run unasked", fix)
    return None


# ------------------------------------------------------------------------------------ the table
_POSITIVE_STEPS = "set a positive number of steps"
_DEGREE_FIX = "set 1 (off) or the number of ranks it spans"

CHECKS: tuple[Setting | Rule, ...] = (
    # [optimizer]
    Setting("optimizer.lr", positive_finite,
            "is not a positive finite number: with 0 the weights never change (the run trains nothing and ends "
            "normally), and below 0 the optimizer climbs the loss",
            "set a positive learning rate, e.g. 0.0008 (TorchTitan's default)"),
    Rule("optimizer.*", "name is one of the registry's optimizers; beta1 and beta2 in [0, 1), eps > 0, "
         "weight_decay >= 0, implementation and the chosen optimizer's own keys in the ranges its class checks "
         "(gpa_titan/optim/hyperparameters.py); keys of other optimizers away from their defaults warn",
         "the range the message names (it must be ...)", optimizer_ranges),
    Rule("optimizer.inner_steps/training.steps", "DiLoCo-AdamW: inner_steps <= [training] steps (warns when it "
         "does not divide them)", "lower inner_steps or raise steps", diloco_period),
    # [lr_scheduler]
    Setting("lr_scheduler.warmup_steps", at_least(0),
            "is negative: the schedule would start part-way down its decay, below [optimizer] lr, without warmup",
            "set 0 for no warmup, or a number of steps (often 10% of [training] steps)"),
    Setting("lr_scheduler.min_lr_factor", in_unit_interval,
            "is outside [0, 1]: the learning rate decays from lr to lr x min_lr_factor, so below 0 it turns "
            "negative (the loss climbs) and above 1 it grows instead of decaying",
            "set it in [0, 1]: 0 decays to zero, 0.1 to a tenth of lr"),
    Setting("lr_scheduler.decay_ratio", lambda v: v is None or in_unit_interval(v),
            "is outside [0, 1]: it is the fraction of the schedule spent decaying (warmup-stable-decay), and below 0 "
            "the learning rate never decays",
            "remove it (the decay starts right after warmup) or set a fraction, e.g. 0.2 for the last 20% of steps"),
    Rule("lr_scheduler.total_steps", "None, or at least [training] steps",
         "remove it or set it to at least [training] steps", schedule_length),
    Rule("lr_scheduler.warmup_steps/steps", "warns when warmup_steps >= the schedule's steps (the whole run is "
         "warmup)", "lower warmup_steps", warmup_length),
    # [training]
    Setting("training.steps", at_least(1), ": a run needs at least one step", "set a positive number"),
    Setting("training.local_batch_size", at_least(1),
            "must be at least 1: it is the number of sequences per rank in each micro-batch",
            "set a positive number, e.g. 8"),
    Setting("training.seq_len", at_least(1), "must be at least 1: it is the number of tokens per sequence",
            "set a positive even number, e.g. 2048"),
    Setting("training.max_norm", lambda v: _is_real(v) and v > 0,
            "is not above 0: TorchTitan scales the gradients to at most this norm before every step, so 0 zeroes "
            "every update (the run trains nothing, while the logged grad_norm, taken before clipping, looks normal) "
            "and a negative value reverses them",
            "set a positive norm, e.g. 1.0; to turn clipping off, set inf (max_norm = inf in TOML, "
            "--training.max_norm inf)"),
    Setting("training.gc_freq", at_least(1),
            "must be at least 1: TorchTitan collects garbage every gc_freq steps, and asserts this once the model "
            "is built", f"{_POSITIVE_STEPS}, e.g. 50 (TorchTitan's default)"),
    Setting("training.dataloader.num_workers", at_least(0),
            "is negative: it is the number of data-loading processes per rank",
            "set 0 (load in the training process) or a positive number"),
    # [parallelism]: each degree, then the degrees against the ranks, the batch, the heads and the sequence
    *(Setting(f"parallelism.{degree}", at_least(1), "must be at least 1 (1: off)", _DEGREE_FIX)
      for degree in ("data_parallel_replicate_degree", "tensor_parallel_degree", "pipeline_parallel_degree",
                     "context_parallel_degree", "expert_parallel_degree", "expert_tensor_parallel_degree")),
    Setting("parallelism.data_parallel_shard_degree", minus_one_or_at_least(1),
            "must be -1 (the ranks the other degrees leave) or at least 1 (1: off)",
            "set -1, or the number of ranks that shard the weights"),
    Rule("parallelism.*/WORLD_SIZE", "data_parallel_replicate_degree x data_parallel_shard_degree x tensor, "
         "pipeline and context parallel degrees = WORLD_SIZE (a shard degree of -1 must fill the ranks left exactly)",
         "data_parallel_shard_degree = -1, or launch that many ranks", degrees_fill_the_ranks),
    Rule("training.global_batch_size/ranks", "-1, or a positive multiple of local_batch_size x data-parallel ranks "
         "(data_parallel_replicate_degree x resolved data_parallel_shard_degree)",
         "-1, or a multiple of local_batch_size x ranks", global_batch),
    Rule("parallelism.tensor_parallel_degree/heads", "divides the flavor's attention and key/value heads",
         "a divisor of the heads", heads_split_evenly),
    Rule("training.seq_len/parallelism", "a multiple of 2 x tensor_parallel_degree x context_parallel_degree "
         "(TorchTitan's Llama parallelization)", "a multiple of that product", seq_len_splits),
    Rule("parallelism.pipeline_parallel_microbatch_size", "with pipeline parallelism: divides [training] "
         "local_batch_size", "a divisor of local_batch_size", microbatches),
    # [validation] (when enabled)
    Setting("validation.freq", at_least(1),
            "must be at least 1 when [validation] enable: validation runs at steps divisible by it (0 fails with "
            "a ZeroDivisionError after step 1)",
            f"{_POSITIVE_STEPS}, e.g. --validation.freq 100, or turn validation off (--validation.no-enable)",
            validation_on),
    Setting("validation.steps", at_least(1),
            ": the validation set is fixed (the same batches at every evaluation), so it needs a size",
            "set a positive number of batches", validation_on),
    Setting("validation.local_batch_size", at_least(1),
            "must be at least 1 when [validation] enable: it is the number of sequences per rank in each batch",
            "set a positive number, e.g. 8", validation_on),
    Setting("validation.seq_len", at_least(1),
            "must be at least 1 when [validation] enable: it is the number of tokens per sequence",
            "set a positive number, usually [training] seq_len", validation_on),
    Rule("validation.seq_len/training.seq_len", "at most [training] seq_len (the rotary embedding's length)",
         "at most [training] seq_len", validation_fits_the_model),
    # [metrics], [profiling]
    Setting("metrics.log_freq", at_least(1),
            "must be at least 1: metrics are logged, and preemption requests agreed, at steps divisible by it (0 "
            "fails with a ZeroDivisionError after step 1)", f"{_POSITIVE_STEPS}, e.g. --metrics.log_freq 10"),
    Rule("profiling.profile_freq", "with profiling: profiler_active >= 1, profiler_warmup >= 0 and profile_freq >= "
         "profiler_warmup + profiler_active; with memory snapshots: profile_freq >= 1",
         "raise profile_freq", profiler_schedule),
    # [job], [checkpoint]
    Setting("job.stop_after_steps", minus_one_or_at_least(1), "must be -1 or >= 1",
            "set -1 to run to [training] steps, or the number of steps this launch trains"),
    Rule("job.stop_after_steps/checkpoint.enable", "with [checkpoint] enable = false: -1 (a stop without a "
         "checkpoint cannot be continued)", "--checkpoint.enable, or --training.steps N for a short run",
         stop_needs_checkpoints),
    Setting("checkpoint.initial_load_path", lambda v: not v,
            "is set, but [checkpoint] enable = false: TorchTitan then loads nothing, without a word, and the run "
            "starts from random weights", "add --checkpoint.enable (or remove initial_load_path)", checkpoints_off),
    Setting("checkpoint.interval", at_least(1),
            "must be at least 1 when [checkpoint] enable: checkpoints are written at steps divisible by it (0 fails "
            "with a ZeroDivisionError at step 1)",
            f"{_POSITIVE_STEPS}, e.g. 500, or turn checkpoints off (--checkpoint.no-enable)", checkpoints_on),
    Setting("checkpoint.keep_latest_k", lambda v: _is_int(v) and (v == 0 or v >= 2),
            "must be 0 (keep every checkpoint) or at least 2: TorchTitan refuses 1 once the model is built (the "
            "newest may still be being written), and a negative value silently keeps every checkpoint",
            "set 0 to keep all, or e.g. 3", checkpoints_on),
    Setting("checkpoint.load_step", minus_one_or_at_least(0),
            "must be -1 (the latest checkpoint) or a step number", "set -1, or the N of a step-N folder",
            checkpoints_on),
    Setting("checkpoint.last_save_in_hf", lambda v: not v,
            "needs [checkpoint] last_save_model_only = true: TorchTitan asserts it at the last step, after the "
            "whole run has trained", "add --checkpoint.last_save_model_only, or remove last_save_in_hf",
            lambda run: checkpoints_on(run) and not run.config.checkpoint.last_save_model_only),
    Setting("checkpoint.initial_load_in_hf", lambda v: not v,
            "needs [checkpoint] initial_load_model_only = true (a Hugging Face checkpoint holds weights only): "
            "TorchTitan asserts it when training starts",
            "add --checkpoint.initial_load_model_only, or remove initial_load_in_hf",
            lambda run: checkpoints_on(run) and not run.config.checkpoint.initial_load_model_only),
    Setting("checkpoint.initial_load_in_hf_quantized", lambda v: not v,
            "needs [checkpoint] initial_load_in_hf = true: TorchTitan asserts it when training starts",
            "add --checkpoint.initial_load_in_hf, or remove initial_load_in_hf_quantized",
            lambda run: checkpoints_on(run) and not run.config.checkpoint.initial_load_in_hf),
    Rule("checkpoint.create_seed_checkpoint", "needs [checkpoint] enable and one rank",
         "--checkpoint.enable, one process", seed_checkpoint),
    # [model]
    Setting("model.name", lambda v: v == MODEL_NAME,
            "is not this repo's model: the trainer needs the gpa_llama3 train spec (its optimizers, data, "
            "validation and flavors)", f'set [model] name = "{MODEL_NAME}"'),
    Setting("model.flavor", lambda v: v in FLAVORS, "is not a flavor of gpa_llama3",
            f"choose one of {list(FLAVORS)} (gpa_titan/titan/models.py)"),
    Setting("model.vocab_size", minus_one_or_at_least(1), "must be -1 (the flavor's) or >= 1",
            "set -1 to keep the flavor's vocabulary, or at least the tokenizer's size"),
    # the environment
    Rule(f"${PREEMPT_SIGNAL_VAR}", "a signal name of Python's signal module that a scheduler sends to ask for a "
         "stop: not SIGKILL/SIGSTOP (uncatchable), SIGINT/SIGTERM/SIGHUP/SIGQUIT (the launchers' stop signals) or one "
         "the kernel "
         "or process raises for other reasons (SIGCHLD, faults, terminal and timer signals)",
         "unset it (SIGUSR1) or SIGUSR2", preemption_signal),
)


def run_start_checks(job_config, world_size: int | None = None, environ: Mapping[str, str] | None = None) -> list[str]:
    """Run ``CHECKS`` in order: raise ``ConfigError`` with the first failing row's message, else
    return the warnings.

    Args:
        job_config: the parsed JobConfig (with ``gpa_titan.titan.job_config`` merged in).
        world_size (int | None): the number of ranks; None: ``WORLD_SIZE`` (1 when unset).
        environ (Mapping | None): the environment; None: ``os.environ``.
    """
    if world_size is None:
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
    run = Run(job_config, world_size, os.environ if environ is None else environ)
    for row in CHECKS:
        problem = row.check(run)
        if problem is not None:
            raise ConfigError(problem)
    return run.warnings
