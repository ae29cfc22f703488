"""The optimizer registry: config checks are the optimizers' own, named by TOML key."""

import dataclasses
import os

import pytest
import torch
from torchtitan.config import ConfigManager

from gpa_titan.optim import HyperparameterError
from gpa_titan.optim.registry import (
    EXTRA_FIELDS,
    OPTIMIZER_NAMES,
    OPTIMIZERS,
    STUDIED_OPTIMIZERS,
    default_of,
    owner_names,
    unused_optimizer_keys,
)
from gpa_titan.titan.job_config import Optimizer, validate_optimizer_config
from helpers import REPO


def config(*args):
    return ConfigManager().parse_args(["--job.config_file", os.path.join(REPO, "configs", "debug_cpu.toml"), *args])


def test_registry_lists_the_six_optimizers():
    assert OPTIMIZER_NAMES == ("AdamW", "GPA-AdamW", "DiLoCo-AdamW", "ScheduleFree-AdamW", "Muon", "GPA-Muon")
    assert [n for n, s in OPTIMIZERS.items() if s.takes_inner_steps] == ["GPA-AdamW", "DiLoCo-AdamW", "GPA-Muon"]
    # the tuning study covers all six
    assert STUDIED_OPTIMIZERS == ("AdamW", "GPA-AdamW", "DiLoCo-AdamW", "ScheduleFree-AdamW", "Muon", "GPA-Muon")
    assert OPTIMIZERS["GPA-Muon"].h_fields(32, 0.9) == OPTIMIZERS["GPA-AdamW"].h_fields(32, 0.9)  # Table 4's mu_x


def test_muon_fields_are_the_knobs_a_user_sweeps_and_shared_fields_name_every_owner():
    muon = ("momentum", "nesterov", "ns_steps", "adjust_lr_fn", "adamw_lr", "adamw_weight_decay")
    assert OPTIMIZERS["Muon"].fields == muon  # ns_coefficients, ns_eps, adamw_modules: keyword-only, code only
    assert OPTIMIZERS["GPA-Muon"].fields == (*muon, "mu_x", "mu_y")
    assert owner_names("mu_x") == owner_names("mu_y") == ("GPA-AdamW", "GPA-Muon")
    assert all(owner_names(f) == ("Muon", "GPA-Muon") for f in muon)
    flat = {"optimizer.name": "GPA-Muon"}
    assert unused_optimizer_keys(flat) == ["optimizer.inner_steps", "optimizer.outer_lr", "optimizer.outer_momentum",
                                           "optimizer.warmup_steps"]


def test_a_shared_field_has_one_default_across_its_owners():
    for field, owners in EXTRA_FIELDS.items():
        assert len({repr(spec.default(field)) for spec in owners}) == 1, (field, [s.name for s in owners])
        assert getattr(Optimizer(), field) == owners[0].default(field)


def test_muon_sentinels_are_what_the_classes_take():
    """TOML has no None: adamw_lr / adamw_weight_decay = -1 mean Muon's lr / weight_decay."""
    cfg = config("--optimizer.name", "Muon", "--optimizer.lr", "0.02", "--optimizer.adamw_weight_decay", "0")
    spec = OPTIMIZERS["Muon"]
    assert (cfg.optimizer.adamw_lr, cfg.optimizer.adjust_lr_fn) == (-1, "original")
    model = torch.nn.ModuleDict({"tok_embeddings": torch.nn.Embedding(4, 3), "layer": torch.nn.Linear(3, 3)})
    opt = spec.cls(model.named_parameters(), **spec.build_kwargs(cfg.optimizer))
    groups = {g["algorithm"]: g for g in opt.param_groups}
    assert groups["adamw"]["lr"] == groups["muon"]["lr"] == 0.02
    assert groups["adamw"]["weight_decay"] == 0.0 and groups["muon"]["weight_decay"] == cfg.optimizer.weight_decay


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
    params = [("w", torch.nn.Parameter(torch.zeros(4)))]
    opt = spec.cls(params if getattr(spec.cls, "takes_named_parameters", False) else [params[0][1]],
                   **spec.build_kwargs(cfg.optimizer))
    assert opt.param_groups[0]["lr"] == cfg.optimizer.lr


@pytest.mark.parametrize(
    "name,args,key",
    [
        ("ScheduleFree-AdamW", ["--optimizer.beta1", "0.0"], "beta1 = 0.0"),
        ("AdamW", ["--optimizer.beta2", "1.0"], "beta2 = 1.0"),
        ("GPA-AdamW", ["--optimizer.mu_y", "0.0"], "mu_y = 0.0"),
        ("DiLoCo-AdamW", ["--optimizer.outer_lr", "0"], "outer_lr = 0.0"),
        ("ScheduleFree-AdamW", ["--optimizer.warmup_steps", "-1"], "warmup_steps = -1"),
        ("Muon", ["--optimizer.momentum", "1.0"], "momentum = 1.0"),
        ("Muon", ["--optimizer.ns_steps", "0"], "ns_steps = 0"),
        ("Muon", ["--optimizer.adjust_lr_fn", "none"], "adjust_lr_fn = 'none'"),
        ("Muon", ["--optimizer.adamw_lr", "-0.5"], "adamw_lr = -0.5"),
        ("GPA-Muon", ["--optimizer.adamw_weight_decay", "-2"], "adamw_weight_decay = -2.0"),
        ("GPA-Muon", ["--optimizer.mu_x", "1.0"], "mu_x = 1.0"),
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
    cfg = config("--optimizer.name", "Muon", "--optimizer.mu_y", "0.5", "--optimizer.momentum", "0.9")
    warnings = validate_optimizer_config(cfg.optimizer)  # the demo config's mu_x and mu_y; momentum is Muon's own
    assert [w.split(" =")[0] for w in warnings] == ["[optimizer] mu_x", "[optimizer] mu_y"]
    assert warnings[1].startswith("[optimizer] mu_y = 0.5 is ignored: it belongs to GPA-AdamW or GPA-Muon, and this "
                                  "run uses Muon")
