"""The start-up table (gpa_titan/titan/start_checks.py): every row refuses a bad value with one
message naming the key, the value and the fix; the shipped configs pass every row."""

import glob
import os

import pytest
import torch
from torchtitan.config import ConfigManager
from torchtitan.distributed import ParallelDims

from gpa_titan.titan.start_checks import (
    CHECKS,
    ConfigError,
    Rule,
    Run,
    Setting,
    data_parallel_ranks,
    display,
    run_start_checks,
)
from helpers import REPO

CONFIGS = sorted(glob.glob(os.path.join(REPO, "configs", "*.toml")))
DEBUG = os.path.join(REPO, "configs", "debug_cpu.toml")
ON = "--checkpoint.enable"


def cfg(*args, config: str = DEBUG):
    return ConfigManager().parse_args(["--job.config_file", config, *args])


def case(row: str, args, key: str, value: str, fix: str, world_size: int = 1, env: dict | None = None, warns=False):
    return pytest.param(row, list(args), key, value, fix, world_size, env or {}, warns, id=f"{row}:{' '.join(args)}"
                        + (f":{env}" if env else "") + (f":ranks={world_size}" if world_size != 1 else ""))


# one bad value (or more) for every row; debug_cpu.toml: GPA-AdamW, 400 steps, warmup 40, local batch 8,
# seq_len 128, validation on, checkpoints off, flavor "debug" (4 heads, 2 key/value heads)
CASES = [
    case("optimizer.lr", ["--optimizer.lr", "0"], "[optimizer] lr", "0.0", "set a positive learning rate"),
    case("optimizer.lr", ["--optimizer.lr", "-0.001"], "[optimizer] lr", "-0.001", "set a positive learning rate"),
    case("optimizer.*", ["--optimizer.name", "AdamW", "--optimizer.eps", "0"], "[optimizer] eps", "0.0",
         "it must be a number in (0, inf)"),
    case("optimizer.*", ["--optimizer.name", "AdamW", "--optimizer.beta1", "1.0"], "[optimizer] beta1", "1.0",
         "it must be a number in [0, 1)"),
    case("optimizer.*", ["--optimizer.name", "AdamW", "--optimizer.beta2", "-0.1"], "[optimizer] beta2", "-0.1",
         "it must be a number in [0, 1)"),
    case("optimizer.*", ["--optimizer.name", "AdamW", "--optimizer.weight_decay", "-0.1"], "[optimizer] weight_decay",
         "-0.1", "it must be a number in [0, inf)"),
    case("optimizer.*", ["--optimizer.name", "Lion"], "[optimizer] name", "'Lion'", "choose one of"),
    case("optimizer.*", ["--optimizer.name", "Muon", "--optimizer.ns_steps", "0"], "[optimizer] ns_steps", "0",
         "it must be an integer >= 1"),
    case("optimizer.*", ["--optimizer.name", "GPA-Muon", "--optimizer.adjust_lr_fn", "spectral"],
         "[optimizer] adjust_lr_fn", "'spectral'", "it must be one of ['original', 'match_rms_adamw']"),
    case("optimizer.*", ["--optimizer.name", "GPA-Muon", "--optimizer.adamw_lr", "-0.5"], "[optimizer] adamw_lr",
         "-0.5", "or -1 for the same as Muon's lr"),
    case("optimizer.inner_steps/training.steps", ["--optimizer.name", "DiLoCo-AdamW", "--optimizer.inner_steps",
                                                  "500"], "[optimizer] inner_steps", "500", "lower inner_steps"),
    case("lr_scheduler.warmup_steps", ["--lr_scheduler.warmup_steps", "-5"], "[lr_scheduler] warmup_steps", "-5",
         "set 0 for no warmup"),
    case("lr_scheduler.min_lr_factor", ["--lr_scheduler.min_lr_factor", "-1.0"], "[lr_scheduler] min_lr_factor",
         "-1.0", "set it in [0, 1]"),
    case("lr_scheduler.min_lr_factor", ["--lr_scheduler.min_lr_factor", "2.0"], "[lr_scheduler] min_lr_factor",
         "2.0", "set it in [0, 1]"),
    case("lr_scheduler.decay_ratio", ["--lr_scheduler.decay_ratio", "-0.5"], "[lr_scheduler] decay_ratio", "-0.5",
         "remove it"),
    case("lr_scheduler.total_steps", ["--lr_scheduler.total_steps", "100"], "[lr_scheduler] total_steps", "100",
         "set it to at least 400"),
    case("lr_scheduler.warmup_steps/steps", ["--lr_scheduler.warmup_steps", "400"], "[lr_scheduler] warmup_steps",
         "400", "lower it, e.g. to 40", warns=True),
    case("training.steps", ["--training.steps", "0"], "[training] steps", "0", "set a positive number"),
    case("training.local_batch_size", ["--training.local_batch_size", "0"], "[training] local_batch_size", "0",
         "set a positive number"),
    case("training.seq_len", ["--training.seq_len", "0"], "[training] seq_len", "0", "set a positive even number"),
    case("training.max_norm", ["--training.max_norm", "0"], "[training] max_norm", "0.0", "set inf"),
    case("training.max_norm", ["--training.max_norm", "-1"], "[training] max_norm", "-1.0", "set a positive norm"),
    case("training.gc_freq", ["--training.gc_freq", "0"], "[training] gc_freq", "0", "set a positive number"),
    case("training.dataloader.num_workers", ["--training.dataloader.num_workers", "-1"],
         "[training.dataloader] num_workers", "-1", "set 0"),
    *(case(f"parallelism.{d}", [f"--parallelism.{d}", "0"], f"[parallelism] {d}", "0", "set 1 (off)")
      for d in ("data_parallel_replicate_degree", "tensor_parallel_degree", "pipeline_parallel_degree",
                "context_parallel_degree", "expert_parallel_degree", "expert_tensor_parallel_degree")),
    case("parallelism.data_parallel_shard_degree", ["--parallelism.data_parallel_shard_degree", "0"],
         "[parallelism] data_parallel_shard_degree", "0", "set -1"),
    case("parallelism.*/WORLD_SIZE", ["--parallelism.data_parallel_shard_degree", "2"],
         "[parallelism] data_parallel_shard_degree", "2", "set data_parallel_shard_degree = -1"),
    case("parallelism.*/WORLD_SIZE", ["--parallelism.tensor_parallel_degree", "3"],
         "[parallelism] data_parallel_shard_degree", "-1", "launch a multiple of 3 ranks", world_size=2),
    case("training.global_batch_size/ranks", ["--training.global_batch_size", "12"], "[training] global_batch_size",
         "12", "set it to -1 (8 sequences per step) or a multiple of 8, e.g. 8 or 16"),
    case("training.global_batch_size/ranks", ["--training.global_batch_size", "8"], "[training] global_batch_size",
         "8", "e.g. 16 or 32, or set local_batch_size to a divisor of 4", world_size=2),
    case("training.global_batch_size/ranks", ["--training.global_batch_size", "0"], "[training] global_batch_size",
         "0", "set it to -1"),
    case("parallelism.tensor_parallel_degree/heads", ["--parallelism.tensor_parallel_degree", "4"],
         "[parallelism] tensor_parallel_degree", "4", "set one of 1, 2", world_size=4),
    case("training.seq_len/parallelism", ["--training.seq_len", "127", "--validation.seq_len", "127"],
         "[training] seq_len", "127", "e.g. 126 or 128"),
    case("parallelism.pipeline_parallel_microbatch_size", ["--parallelism.pipeline_parallel_degree", "2",
                                                           "--parallelism.pipeline_parallel_microbatch_size", "3"],
         "[parallelism] pipeline_parallel_microbatch_size", "3", "set a divisor of 8", world_size=2),
    case("validation.freq", ["--validation.freq", "0"], "[validation] freq", "0", "--validation.no-enable"),
    case("validation.steps", ["--validation.steps", "-1"], "[validation] steps", "-1",
         "set a positive number of batches"),
    case("validation.local_batch_size", ["--validation.local_batch_size", "0"], "[validation] local_batch_size",
         "0", "set a positive number"),
    case("validation.seq_len", ["--validation.seq_len", "0"], "[validation] seq_len", "0", "set a positive number"),
    case("validation.seq_len/training.seq_len", ["--validation.seq_len", "256"], "[validation] seq_len", "256",
         "set it to at most 128"),
    case("metrics.log_freq", ["--metrics.log_freq", "0"], "[metrics] log_freq", "0", "--metrics.log_freq 10"),
    case("profiling.profile_freq", ["--profiling.enable_profiling", "--profiling.profile_freq", "2",
                                    "--profiling.profiler_warmup", "3"], "[profiling] profile_freq", "2",
         "set profile_freq to at least 4"),
    case("job.stop_after_steps", ["--job.stop_after_steps", "0"], "[job] stop_after_steps", "0", "set -1"),
    case("job.stop_after_steps/checkpoint.enable", ["--job.stop_after_steps", "5"], "[job] stop_after_steps", "5",
         "add --checkpoint.enable, or set --training.steps 5"),
    case("checkpoint.initial_load_path", ["--checkpoint.initial_load_path", "/x/step-10"],
         "[checkpoint] initial_load_path", "'/x/step-10'", "add --checkpoint.enable"),
    case("checkpoint.interval", [ON, "--checkpoint.interval", "0"], "[checkpoint] interval", "0",
         "set a positive number of steps"),
    case("checkpoint.keep_latest_k", [ON, "--checkpoint.keep_latest_k", "1"], "[checkpoint] keep_latest_k", "1",
         "set 0 to keep all"),
    case("checkpoint.keep_latest_k", [ON, "--checkpoint.keep_latest_k", "-1"], "[checkpoint] keep_latest_k", "-1",
         "set 0 to keep all"),
    case("checkpoint.load_step", [ON, "--checkpoint.load_step", "-2"], "[checkpoint] load_step", "-2", "set -1"),
    case("checkpoint.last_save_in_hf", [ON, "--checkpoint.last_save_in_hf", "--checkpoint.no-last-save-model-only"],
         "[checkpoint] last_save_in_hf", "true", "add --checkpoint.last_save_model_only"),
    case("checkpoint.initial_load_in_hf", [ON, "--checkpoint.initial_load_in_hf",
                                           "--checkpoint.no-initial-load-model-only"],
         "[checkpoint] initial_load_in_hf", "true", "add --checkpoint.initial_load_model_only"),
    case("checkpoint.initial_load_in_hf_quantized", [ON, "--checkpoint.initial_load_in_hf_quantized"],
         "[checkpoint] initial_load_in_hf_quantized", "true", "add --checkpoint.initial_load_in_hf"),
    case("checkpoint.create_seed_checkpoint", ["--checkpoint.create_seed_checkpoint"],
         "[checkpoint] create_seed_checkpoint", "true", "add --checkpoint.enable"),
    case("checkpoint.create_seed_checkpoint", [ON, "--checkpoint.create_seed_checkpoint"],
         "[checkpoint] create_seed_checkpoint", "true", "run it as one process", world_size=2),
    case("model.name", ["--model.name", "llama3"], "[model] name", "'llama3'", 'set [model] name = "gpa_llama3"'),
    case("model.flavor", ["--model.flavor", "tiny"], "[model] flavor", "'tiny'", "choose one of ['debug'"),
    case("model.vocab_size", ["--model.vocab_size", "0"], "[model] vocab_size", "0", "set -1"),
    *(case("$GPA_PREEMPT_SIGNAL", [], "the environment variable GPA_PREEMPT_SIGNAL", repr(name), fix,
           env={"GPA_PREEMPT_SIGNAL": name})
      for name, fix in (("SIGKILL", "name SIGUSR2"), ("SIGTERM", "name SIGUSR2"), ("SIGINT", "name SIGUSR2"),
                        ("SIGHUP", "name SIGUSR2"), ("SIGCHLD", "name SIGUSR2"), ("USR1", "write it SIGUSR1"),
                        ("sigusr2", "write it SIGUSR2"), ("SIGNOPE", "unset it for SIGUSR1"))),
]


def test_row_names_are_unique():
    names = [row.name for row in CHECKS]
    assert len(names) == len(set(names)), names


def test_every_row_has_a_bad_case():
    """A new row without a case here fails this test."""
    assert {c.values[0] for c in CASES} == {row.name for row in CHECKS}


@pytest.mark.parametrize("row,args,key,value,fix,world_size,env,warns", CASES)
def test_every_row_refuses_its_bad_value(row, args, key, value, fix, world_size, env, warns):
    config = cfg(*args)
    (this,) = [r for r in CHECKS if r.name == row]
    if warns:  # a row that only warns
        warnings = run_start_checks(config, world_size, env)
        (text,) = [w for w in warnings if w.startswith(f"{key} = {value} ")]
        assert fix in text
        return
    with pytest.raises(ConfigError) as error:
        run_start_checks(config, world_size, env)
    text = str(error.value)
    assert text.startswith(f"{key} = {value}"), text
    assert fix in text, text
    assert "\n" not in text
    assert this.check(Run(config, world_size, env)) == text, "another row refused it first"


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
@pytest.mark.parametrize("world_size", [1, 8])
def test_shipped_configs_pass_every_row(path, world_size):
    warnings = run_start_checks(cfg(config=path), world_size, {})
    # only the optimizer's own, known warnings: a shared key of another optimizer, DiLoCo's H not dividing the steps
    assert all(w.startswith("[optimizer] ") for w in warnings), warnings


def test_every_setting_message_names_key_value_and_fix():
    for row in CHECKS:
        if isinstance(row, Setting):
            assert row.wrong and row.fix and not row.fix.endswith("."), row.key
            assert display(row.key).startswith("["), row.key


# ------------------------------------------------------------------------ the cross-key rules: good and bad
RULE_CASES = {
    "optimizer.*": ([], ["--optimizer.mu_y", "1.5"], 1, {}),
    "optimizer.inner_steps/training.steps": (["--optimizer.name", "DiLoCo-AdamW", "--optimizer.inner_steps", "400"],
                                             ["--optimizer.name", "DiLoCo-AdamW", "--optimizer.inner_steps", "401"],
                                             1, {}),
    "lr_scheduler.total_steps": (["--lr_scheduler.total_steps", "400"], ["--lr_scheduler.total_steps", "399"], 1,
                                 {}),
    "lr_scheduler.warmup_steps/steps": (["--lr_scheduler.warmup_steps", "399"],
                                        ["--lr_scheduler.warmup_steps", "399", "--training.steps", "399"], 1, {}),
    "parallelism.*/WORLD_SIZE": (["--parallelism.data_parallel_replicate_degree", "2",
                                  "--parallelism.data_parallel_shard_degree", "2"],
                                 ["--parallelism.data_parallel_replicate_degree", "2",
                                  "--parallelism.data_parallel_shard_degree", "3"], 4, {}),
    "training.global_batch_size/ranks": (["--training.global_batch_size", "32"], ["--training.global_batch_size", "24"],
                                         2, {}),
    "parallelism.tensor_parallel_degree/heads": (["--parallelism.tensor_parallel_degree", "2"],
                                                 ["--parallelism.tensor_parallel_degree", "3"], 6, {}),
    "training.seq_len/parallelism": (["--parallelism.tensor_parallel_degree", "2", "--training.seq_len", "124",
                                      "--validation.seq_len", "124"],
                                     ["--parallelism.tensor_parallel_degree", "2", "--training.seq_len", "126",
                                      "--validation.seq_len", "126"], 2, {}),
    "parallelism.pipeline_parallel_microbatch_size": (["--parallelism.pipeline_parallel_degree", "2",
                                                       "--parallelism.pipeline_parallel_microbatch_size", "4"],
                                                      ["--parallelism.pipeline_parallel_degree", "2",
                                                       "--parallelism.pipeline_parallel_microbatch_size", "5"], 2, {}),
    "validation.seq_len/training.seq_len": (["--validation.seq_len", "64"], ["--validation.seq_len", "129"], 1, {}),
    "profiling.profile_freq": (["--profiling.enable_profiling", "--profiling.profile_freq", "4",
                                "--profiling.profiler_warmup", "3"],
                               ["--profiling.enable_profiling", "--profiling.profile_freq", "3",
                                "--profiling.profiler_warmup", "3"], 1, {}),
    "job.stop_after_steps/checkpoint.enable": ([ON, "--job.stop_after_steps", "5"], ["--job.stop_after_steps", "5"],
                                               1, {}),
    "checkpoint.create_seed_checkpoint": ([ON, "--checkpoint.create_seed_checkpoint"],
                                          [ON, "--checkpoint.create_seed_checkpoint"], 1, {"ranks": 2}),
    "$GPA_PREEMPT_SIGNAL": ([], [], 1, {"GPA_PREEMPT_SIGNAL": "SIGTERM", "good": {"GPA_PREEMPT_SIGNAL": "SIGUSR2"}}),
}


def test_every_rule_has_a_good_and_a_bad_case():
    assert set(RULE_CASES) == {row.name for row in CHECKS if isinstance(row, Rule)}


@pytest.mark.parametrize("name", sorted(RULE_CASES))
def test_cross_key_rule_accepts_good_and_refuses_bad(name):
    good, bad, world_size, extra = RULE_CASES[name]
    (rule,) = [r for r in CHECKS if r.name == name]
    extra = dict(extra)
    good_env = extra.pop("good", {})
    bad_world = extra.pop("ranks", world_size)
    good_run = Run(cfg(*good), world_size, good_env)
    assert rule.check(good_run) is None and run_start_checks(good_run.config, world_size, good_env) is not None
    bad_run = Run(cfg(*bad), bad_world, extra)
    problem = rule.check(bad_run)
    if problem is None:  # the rule that only warns
        assert any(w.startswith("[lr_scheduler] warmup_steps = 399 ") for w in bad_run.warnings), bad_run.warnings
        assert good_run.warnings == []
    else:
        assert problem.startswith(("[", "the environment variable")) and " = " in problem, problem
        with pytest.raises(ConfigError, match="^" + problem.split(" = ")[0].replace("[", r"\[").replace("]", r"\]")):
            run_start_checks(bad_run.config, bad_world, extra)


# ------------------------------------------------------------------------------------------- helpers
@pytest.mark.parametrize("world_size,args", [
    (1, []), (8, []), (8, ["--parallelism.data_parallel_replicate_degree", "2"]),
    (8, ["--parallelism.tensor_parallel_degree", "2"]),
    (16, ["--parallelism.data_parallel_replicate_degree", "2", "--parallelism.pipeline_parallel_degree", "2",
          "--parallelism.context_parallel_degree", "2"]),
    (4, ["--parallelism.data_parallel_shard_degree", "4"]),
])
def test_data_parallel_ranks_as_torchtitan_resolves_them(world_size, args):
    par = cfg(*args).parallelism
    dims = ParallelDims(dp_shard=par.data_parallel_shard_degree, dp_replicate=par.data_parallel_replicate_degree,
                        cp=par.context_parallel_degree, tp=par.tensor_parallel_degree,
                        pp=par.pipeline_parallel_degree, ep=1, etp=1, world_size=world_size)
    assert data_parallel_ranks(cfg(*args), world_size) == dims.dp_replicate * dims.dp_shard


def test_max_norm_inf_turns_clipping_off():
    """The fix the max_norm row gives: TorchTitan's clipping with inf leaves the gradients as they are."""
    assert run_start_checks(cfg("--training.max_norm", "inf"), 1, {}) == []
    p = torch.nn.Parameter(torch.zeros(3))
    p.grad = torch.tensor([300.0, -400.0, 0.0])
    norm = torch.nn.utils.get_total_norm([p.grad])
    torch.nn.utils.clip_grads_with_norm_([p], float("inf"), norm)
    assert p.grad.tolist() == [300.0, -400.0, 0.0]
