"""Every shipped TOML parses through TorchTitan's ConfigManager; bad settings name their key."""

import dataclasses
import glob
import os
from typing import Literal

import pytest
from torchtitan.config import ConfigManager

from gpa_titan.titan.job_config import validate_job_config
from gpa_titan.titan.settings_check import OUR_MODULE, SettingsError, check_settings, job_config_class, matches
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


# ---------------------------------------------------------------------- the pre-check of gpa_titan.train
def leaf_fields(cls, table=()):
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(f.type):
            yield from leaf_fields(f.type, (*table, f.name))
        else:
            yield table, f


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_shipped_configs_pass_the_pre_check(path):
    check_settings(["--job.config_file", path])


def test_every_default_passes_the_type_check():
    """Writing any field's default into a TOML must pass: the checker knows every field type."""
    checked = 0
    for table, f in leaf_fields(job_config_class(OUR_MODULE, "x.toml")):
        default = f.default if f.default is not dataclasses.MISSING else None
        if f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        if default is not None:
            assert matches(default, f.type), (table, f.name, f.type, default)
            checked += 1
    assert checked > 100


@pytest.mark.parametrize(
    "value,tp,ok",
    [
        (1, float, True), (1.5, int, False), (True, int, False), (True, bool, True), ("1", float, False),
        ("fused", Literal["for-loop", "foreach", "fused"], True), ("Fused", Literal["fused"], False),
        ("a", str | None, True), (3, str | None, False), (["a", "b"], list[str], True), (["a", 1], list[str], False),
        ("a", list[str] | str, True), (2, float | int, True), ({"k": 1}, dict[str, int], True),
    ],
)
def test_type_check(value, tp, ok):
    assert matches(value, tp) is ok


def write(tmp_path, text):
    path = tmp_path / "c.toml"
    path.write_text(text)
    return str(path)


def test_pre_check_mistakes_name_file_line_and_key(tmp_path):
    head = f'[job]\ncustom_config_module = "{OUR_MODULE}"\n'
    cases = [
        (head + "[optimizer]\nlr = 'fast'\n", r"c\.toml, line 4: \[optimizer\] lr = \"fast\" is a string, but"),
        (head + "[training.dataloader]\nnum_workers = 1.5\n", r"line 4: \[training\.dataloader\] num_workers = 1"),
        ("optimizer = 3\n" + head, r"line 1: \(top level\) optimizer = 3 is an integer, but optimizer is a table"),
        (head + "[optimiser]\nlr = 1\n", r"line 3: unknown table \[optimiser\]: did you mean \[optimizer\]\?"),
        (head + "[model]\nflavour = 'debug'\n", r"line 4: unknown key \[model\] flavour: did you mean flavor\?"),
        (head + "[job]\ndescription = 'twice'\n", r"line 3: TOML syntax error .*: Cannot declare .* set twice"),
        ('[job]\ncustom_config_module = "no.such.module"\n', r"custom_config_module = 'no\.such\.module' cannot be"),
        ('[job]\ncustom_config_module = "torchtitan.config.job_config"\n', r"lacks this repo's settings \(\[job\]"),
        ("[optimizer]\nlr = 0.1\n", r"lacks \[job\] custom_config_module = \"gpa_titan\.titan\.job_config\""),
    ]
    for text, message in cases:
        with pytest.raises(SettingsError, match=message):
            check_settings(["--job.config_file", write(tmp_path, text)])
    check_settings(["--job.config_file", write(tmp_path, head + "[optimizer]\nlr = 1\nname = 'AdamW'\n")])
    check_settings(["--job.config_file", write(tmp_path, "[optimizer]\nlr = 1\n"), "--job.custom_config_module",
                    OUR_MODULE])
