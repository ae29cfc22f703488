"""Every shipped TOML parses through TorchTitan's ConfigManager; bad settings name their key."""

import glob
import os

import pytest
from torchtitan.config import ConfigManager

from gpa_titan.titan.job_config import validate_job_config
from helpers import REPO

CONFIGS = sorted(glob.glob(os.path.join(REPO, "configs", "*.toml")))


def parse(*args):
    return ConfigManager().parse_args(list(args))


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_parses_and_validates(path):
    cfg = parse("--job.config_file", path)
    assert cfg.model.name == "gpa_llama3"
    assert cfg.job.custom_config_module == "gpa_titan.titan.job_config"
    assert cfg.experimental.custom_import == "gpa_titan.titan.spec"
    validate_job_config(cfg)


def test_there_are_configs():
    assert any(p.endswith("debug_cpu.toml") for p in CONFIGS)


def test_new_fields_settable_from_cli():
    cfg = parse(
        "--job.config_file", os.path.join(REPO, "configs", "debug_cpu.toml"),
        "--optimizer.mu_x", "0.99", "--optimizer.mu_y", "0.5", "--optimizer.inner_steps", "16",
        "--optimizer.outer_lr", "0.6", "--optimizer.outer_momentum", "0.8", "--model.vocab_size", "2048",
    )
    assert (cfg.optimizer.mu_x, cfg.optimizer.mu_y, cfg.optimizer.inner_steps) == (0.99, 0.5, 16)
    assert (cfg.optimizer.outer_lr, cfg.optimizer.outer_momentum, cfg.model.vocab_size) == (0.6, 0.8, 2048)


@pytest.mark.parametrize(
    "args,message",
    [
        (["--optimizer.name", "Lion"], r"\[optimizer\] name = 'Lion' is not known.*GPA-AdamW"),
        (["--optimizer.mu_x", "1.0"], r"\[optimizer\] mu_x = 1.0 is out of range"),
        (["--optimizer.mu_y", "0.0"], r"\[optimizer\] mu_y = 0.0 is out of range"),
        (["--optimizer.name", "DiLoCo-AdamW", "--optimizer.inner_steps", "0"], r"\[optimizer\] inner_steps"),
        (["--optimizer.name", "DiLoCo-AdamW", "--optimizer.outer_momentum", "1.0"], r"\[optimizer\] outer_momentum"),
        (["--optimizer.eps", "0"], r"\[optimizer\] eps"),
        (["--validation.steps", "-1"], r"\[validation\] steps = -1"),
    ],
)
def test_bad_settings_name_the_key(args, message):
    cfg = parse("--job.config_file", os.path.join(REPO, "configs", "debug_cpu.toml"), *args)
    with pytest.raises(ValueError, match=message):
        validate_job_config(cfg)
