"""What makes a launch the same run: math differences, settings checks, checkpoint space."""

import os
from types import SimpleNamespace

import pytest
import torch
from torchtitan.config import ConfigManager

from gpa_titan.optim import GPAAdamW
from gpa_titan.optim.registry import default_of
from gpa_titan.runs import write_checkpoint_config
from gpa_titan.titan import checkpoint as checkpoint_module
from gpa_titan.titan.job_config import validate_job_config
from gpa_titan.titan.run_identity import (
    RunIdentityError,
    check_checkpoint,
    check_folder,
    effective_global_batch,
    math_differences,
    run_config,
)
from gpa_titan.titan.run_info import write_run_info
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
    with pytest.raises(checkpoint_module.CheckpointError, match="GiB free but one checkpoint of this run takes about"):
        checkpoint_module.check_checkpoint_space(ckpt, [model], optimizers)
    monkeypatch.setattr(checkpoint_module.shutil, "disk_usage", lambda _: SimpleNamespace(free=10 * needed))
    checkpoint_module.check_checkpoint_space(ckpt, [model], optimizers)  # room for keep_latest_k + 1


def test_a_launch_that_changes_only_the_warm_start_path_is_the_same_run_but_the_seed_is_not():
    base = run_config(cfg(), 1)
    warm = run_config(cfg("--checkpoint.initial_load_path", "/elsewhere/step-10",
                          "--checkpoint.no-initial_load_model_only"), 1)
    assert math_differences(base, warm) == []
    seeded = run_config(cfg("--debug.seed", "7"), 1)
    assert [key for key, _, _ in math_differences(base, seeded)] == ["debug.seed"]


def test_a_resume_that_changes_only_the_warm_start_path_goes_on_and_one_that_changes_the_seed_is_refused(tmp_path):
    dump, checkpoint = str(tmp_path / "run"), str(tmp_path / "run" / "checkpoint" / "step-10")
    base = run_config(cfg(), 1)
    write_run_info(dump, base)
    write_checkpoint_config(checkpoint, base)
    warm = run_config(cfg("--checkpoint.initial_load_path", "/elsewhere/step-10"), 1)
    assert check_folder(dump, warm, allow_changes=False) == []
    assert check_checkpoint(checkpoint, warm, allow_changes=False) == []
    seeded = run_config(cfg("--debug.seed", "7"), 1)
    with pytest.raises(RunIdentityError, match=r"holds another run: debug.seed: 0 -> 7 "):
        check_folder(dump, seeded, allow_changes=False)
    with pytest.raises(RunIdentityError, match=r"other settings: debug.seed: 0 -> 7 "):
        check_checkpoint(checkpoint, seeded, allow_changes=False)


def test_a_checkpoint_of_another_model_shape_is_refused_even_with_changes_allowed(tmp_path):
    write_checkpoint_config(str(tmp_path), run_config(cfg(), 1))
    for args in (("--model.flavor", "small"), ("--model.vocab_size", "2048")):
        with pytest.raises(RunIdentityError, match="holds a model of another shape") as error:
            check_checkpoint(str(tmp_path), run_config(cfg(*args), 1), allow_changes=True)
        assert args[0][2:] in str(error.value) and "Delete" not in str(error.value)
    # a warm start of the weights only needs the same shapes, not the same optimizer or settings
    assert check_checkpoint(str(tmp_path), run_config(cfg("--optimizer.name", "AdamW", "--optimizer.lr", "0.1"), 1),
                            allow_changes=False, model_only=True) == []


def test_the_checkpoint_folder_check_does_not_create_the_folder(tmp_path):
    folder = tmp_path / "run" / "checkpoint"
    checkpoint_module.check_checkpoint_folder(str(folder))
    assert not folder.exists() and not (tmp_path / "run").exists(), "TorchTitan would then skip initial_load_path"
    (tmp_path / "file").write_text("x")
    with pytest.raises(checkpoint_module.CheckpointError, match="cannot be written"):
        checkpoint_module.check_checkpoint_folder(str(tmp_path / "file" / "checkpoint"))


@pytest.mark.parametrize("name", ["GPA-AdamW", "DiLoCo-AdamW", "ScheduleFree-AdamW", "AdamW"])
def test_a_load_keeps_the_state_but_puts_back_this_launchs_hyperparameters(name):
    from gpa_titan.optim.registry import get_optimizer_spec
    from gpa_titan.titan.optimizer_container import EvalWeightsOptimizersContainer

    spec = get_optimizer_spec(name)

    def container(*args):
        torch.manual_seed(0)
        model = torch.nn.Linear(4, 3)
        return model, EvalWeightsOptimizersContainer([model], spec.cls, spec.build_kwargs(cfg(
            "--optimizer.name", name, *args).optimizer))

    old_model, old = container()
    for _ in range(3):
        old_model(torch.randn(2, 4)).square().sum().backward()
        old.step()
        old.zero_grad()
    changed = ("--optimizer.lr", "0.0005", "--optimizer.weight_decay", "0.03", "--optimizer.mu_x", "0.5",
               "--optimizer.outer_lr", "0.5", "--optimizer.beta1", "0.7")
    _, new = container(*changed)
    new.load_state_dict(old.state_dict())
    loaded = new.optimizers[0].param_groups[0]
    assert loaded["lr"] == 0.003 and loaded["weight_decay"] != 0.03, "the load restored the saved values"
    new.reapply_configured_hyperparameters()
    group = new.optimizers[0].param_groups[0]
    assert group["lr"] == 0.0005 and group["weight_decay"] == 0.03 and group["betas"][0] == 0.7
    for key in ("mu_x", "outer_lr"):
        if key in group:
            assert group[key] == 0.5
    for key in ("step", "train_mode", "lr_max", "weight_sum"):
        if key in group:
            assert group[key] == old.optimizers[0].param_groups[0][key], key


def test_the_first_cpu_kernel_build_is_announced_once(monkeypatch, tmp_path, caplog):
    import torch.utils.cpp_extension as cpp_extension

    from gpa_titan.optim import cpu_kernel as kernel_module

    monkeypatch.setattr(cpp_extension, "_get_build_directory", lambda name, verbose: str(tmp_path))
    monkeypatch.setattr(cpp_extension, "load", lambda **kwargs: "module")
    with caplog.at_level("WARNING"):
        assert kernel_module.cpu_kernel.__wrapped__() == "module"
    assert "Building the fused CPU kernel" in caplog.text and "30-90 s" in caplog.text
    caplog.clear()
    isa = torch.backends.cpu.get_cpu_capability().lower()
    (tmp_path / f"gpa_titan_adamw_cpu_{isa}_v2.so").write_text("built")
    with caplog.at_level("WARNING"):
        kernel_module.cpu_kernel.__wrapped__()
    assert "Building" not in caplog.text
