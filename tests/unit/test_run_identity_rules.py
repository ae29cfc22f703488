"""What makes a launch the same run: math differences, settings checks, checkpoint space."""

import os
from types import SimpleNamespace

import pytest
import torch
from torchtitan.config import ConfigManager

from gpa_titan.optim import GPAAdamW
from gpa_titan.titan import checkpoint as checkpoint_module
from gpa_titan.titan.job_config import validate_job_config
from gpa_titan.titan.optimizer_registry import default_of
from gpa_titan.titan.run_identity import (
    RunIdentityError,
    check_checkpoint,
    effective_global_batch,
    math_differences,
    run_config,
    write_checkpoint_config,
)
from helpers import REPO

# the optimizer values these tests expect, pinned so that a new tuned demo setting does not change them
PINNED = ("--optimizer.lr", "0.003", "--optimizer.mu_y", "0.8")


def cfg(*args):
    return ConfigManager().parse_args(["--job.config_file", os.path.join(REPO, "configs", "debug_cpu.toml"),
                                       *PINNED, *args])


def test_math_keys_differ_and_layout_logging_and_unused_optimizer_keys_do_not():
    base = run_config(cfg(), 1)
    same = run_config(cfg("--metrics.log_freq", "3", "--validation.freq", "7", "--checkpoint.interval", "9",
                          "--job.stop_after_steps", "5", "--compile.enable", "--optimizer.inner_steps", "8",
                          "--job.dump_folder", "elsewhere"), 1)
    assert math_differences(base, same) == []
    changed = run_config(cfg("--optimizer.mu_y", "0.5", "--training.steps", "800", "--debug.seed", "3"), 1)
    assert math_differences(base, changed) == [
        ("debug.seed", 0, 3), ("optimizer.mu_y", 0.8, 0.5), ("training.steps", 400, 800),
    ]


def test_effective_global_batch_makes_rank_counts_comparable():
    two_ranks = run_config(cfg(), 2)  # global_batch_size = -1: 8 per rank x 2
    assert effective_global_batch(cfg(), 2) == 16
    one_rank_same_batch = run_config(cfg("--training.global_batch_size", "16"), 1)
    assert math_differences(two_ranks, one_rank_same_batch) == []
    assert math_differences(two_ranks, run_config(cfg(), 1)) == [("training.global_batch_size", 16, 8)]


def test_checkpoint_of_another_optimizer_and_changed_settings_are_refused(tmp_path):
    write_checkpoint_config(str(tmp_path), run_config(cfg(), 1))
    assert check_checkpoint(str(tmp_path), run_config(cfg(), 1), allow_changes=False) == []
    with pytest.raises(RunIdentityError, match="was written by GPA-AdamW and this run uses AdamW"):
        check_checkpoint(str(tmp_path), run_config(cfg("--optimizer.name", "AdamW"), 1), allow_changes=True)
    lr = run_config(cfg("--optimizer.lr", "0.01"), 1)
    with pytest.raises(RunIdentityError, match=r"optimizer.lr: 0.003 -> 0.01"):
        check_checkpoint(str(tmp_path), lr, allow_changes=False)
    assert check_checkpoint(str(tmp_path), lr, allow_changes=True) == [("optimizer.lr", 0.003, 0.01)]


@pytest.mark.parametrize(
    "args,message",
    [
        (["--training.steps", "0"], r"\[training\] steps = 0: a run needs at least one step"),
        (["--optimizer.name", "DiLoCo-AdamW", "--optimizer.inner_steps", "500"],
         r"\[optimizer\] inner_steps = 500 is larger than \[training\] steps = 400"),
    ],
)
def test_runs_that_would_do_nothing_useful_are_refused(args, message):
    with pytest.raises(ValueError, match=message):
        validate_job_config(cfg(*args))


def test_diloco_period_not_dividing_the_run_warns():
    gpa_defaults = [f"--optimizer.{key}={default_of(GPAAdamW, key)}" for key in ("mu_x", "mu_y")]
    warnings = validate_job_config(cfg("--optimizer.name", "DiLoCo-AdamW", "--optimizer.inner_steps", "32",
                                       *gpa_defaults))
    assert warnings == ["[optimizer] inner_steps = 32 does not divide [training] steps = 400: the last 16 inner "
                        "steps are never folded into the outer (evaluation) weights"]


def test_checkpoint_space_is_checked_at_start_up(monkeypatch, tmp_path):
    model = torch.nn.Linear(256, 256)
    optimizers = SimpleNamespace(optimizers=[torch.optim.AdamW(model.parameters())])
    ckpt = SimpleNamespace(folder=str(tmp_path), keep_latest_k=3)
    needed = checkpoint_module.checkpoint_bytes([model], optimizers)
    assert needed == (256 * 256 + 256) * 4  # AdamW's state is created lazily: weights only here
    monkeypatch.setattr(checkpoint_module.shutil, "disk_usage", lambda _: SimpleNamespace(free=needed - 1))
    with pytest.raises(RunIdentityError, match="GiB free but one checkpoint of this run takes about"):
        checkpoint_module.check_checkpoint_space(ckpt, [model], optimizers)
    monkeypatch.setattr(checkpoint_module.shutil, "disk_usage", lambda _: SimpleNamespace(free=10 * needed))
    checkpoint_module.check_checkpoint_space(ckpt, [model], optimizers)  # room for keep_latest_k + 1
