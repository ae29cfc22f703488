"""The optimizer registry: config checks are the optimizers' own, named by TOML key."""

import dataclasses
import os

import pytest
import torch
from torchtitan.config import ConfigManager

from gpa_titan.optim import HyperparameterError
from gpa_titan.optim.registry import EXTRA_FIELDS, OPTIMIZER_NAMES, OPTIMIZERS, default_of
from gpa_titan.titan.job_config import Optimizer, validate_optimizer_config
from helpers import REPO


def config(*args):
    return ConfigManager().parse_args(["--job.config_file", os.path.join(REPO, "configs", "debug_cpu.toml"), *args])


def test_registry_lists_the_four_optimizers():
    assert OPTIMIZER_NAMES == ("AdamW", "GPA-AdamW", "DiLoCo-AdamW", "ScheduleFree-AdamW")
    assert [n for n, s in OPTIMIZERS.items() if s.takes_inner_steps] == ["GPA-AdamW", "DiLoCo-AdamW"]


def test_the_job_config_declares_exactly_the_registrys_fields():
    """``job_config.Optimizer`` is the only other place a field is declared (TorchTitan needs the dataclass)."""
    declared = [f.name for f in dataclasses.fields(Optimizer) if f.name != "name"]
    assert declared == list(EXTRA_FIELDS)
    assert OPTIMIZERS["GPA-AdamW"].fields == ("mu_x", "mu_y")  # read from GPAAdamW's signature
    assert OPTIMIZERS["AdamW"].fields == () and OPTIMIZERS["DiLoCo-AdamW"].h_fields(8, 0.9) == {"inner_steps": 8}


def test_config_defaults_are_the_optimizers_defaults():
    for spec in OPTIMIZERS.values():
        for field in spec.fields:
            assert getattr(Optimizer(), field) == default_of(spec.cls, field), field


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_every_optimizer_builds_from_the_demo_config(name):
    cfg = config("--optimizer.name", name)
    spec = OPTIMIZERS[name]
    warnings = validate_optimizer_config(cfg.optimizer)
    if name == "GPA-AdamW":  # the demo config's own optimizer: nothing is ignored
        assert warnings == []
    opt = spec.cls([torch.nn.Parameter(torch.zeros(4))], **spec.build_kwargs(cfg.optimizer))
    assert opt.param_groups[0]["lr"] == cfg.optimizer.lr


@pytest.mark.parametrize(
    "name,args,key",
    [
        ("ScheduleFree-AdamW", ["--optimizer.beta1", "0.0"], "beta1 = 0.0"),
        ("AdamW", ["--optimizer.beta2", "1.0"], "beta2 = 1.0"),
        ("GPA-AdamW", ["--optimizer.mu_y", "0.0"], "mu_y = 0.0"),
        ("DiLoCo-AdamW", ["--optimizer.outer_lr", "0"], "outer_lr = 0.0"),
        ("ScheduleFree-AdamW", ["--optimizer.warmup_steps", "-1"], "warmup_steps = -1"),
    ],
)
def test_config_check_is_the_optimizer_check_with_the_toml_key(name, args, key):
    cfg = config("--optimizer.name", name, *args)
    with pytest.raises(ValueError, match=rf"^\[optimizer\] {key} is out of range for {name}: it must be "):
        validate_optimizer_config(cfg.optimizer)
    # the same value fails the optimizer itself, naming its argument
    with pytest.raises(HyperparameterError):
        OPTIMIZERS[name].validate(cfg.optimizer)


def test_a_key_of_another_optimizer_away_from_its_default_warns():
    cfg = config("--optimizer.name", "GPA-AdamW", "--optimizer.inner_steps", "8")
    (warning,) = validate_optimizer_config(cfg.optimizer)
    assert warning.startswith("[optimizer] inner_steps = 8 is ignored: it belongs to DiLoCo-AdamW")
    cfg = config("--optimizer.name", "DiLoCo-AdamW", "--optimizer.inner_steps", "8", "--optimizer.mu_x", "0.9",
                 "--optimizer.mu_y", "0.5")
    assert [w.split(" =")[0] for w in validate_optimizer_config(cfg.optimizer)] == [
        "[optimizer] mu_x", "[optimizer] mu_y",
    ]
