"""The paper's configs: generated from one table; the configs of one size differ only in the
optimizer, and one config per size runs 3 steps on 2 CPU ranks with only the flavor, batch
shape and data made tiny (schedule, clipping, validation, AC, compile and checkpointing stay as
the config sets them). Every optimizer runs through the trainer on 1 and 2 ranks in
test_train_e2e.py, and every config passes the start-up checks at 1 and 8 ranks
(tests/unit/test_start_checks.py), so running the other configs of a size would repeat those."""

import glob
import os
import subprocess
import sys
import tomllib

import pytest

from helpers import REPO, run_trainer

PAPER_CONFIGS = sorted(glob.glob(os.path.join(REPO, "configs", "llama_*.toml")))
# One config per size runs (the flagship of each size: GPA over Muon at 160M, GPA-AdamW at 1B,
# DiLoCo at 8B, so that the three families each run on a paper config too).
RUN = {"llama_160m": "llama_160m_gpa_muon.toml", "llama_1b": "llama_1b_gpa.toml", "llama_8b": "llama_8b_diloco.toml"}
# What the configs of one size may differ in: the optimizer, and the names that follow from it.
OPTIMIZER_KEYS = {"job.dump_folder", "job.description", "optimizer.name", "optimizer.adjust_lr_fn"}


def size_of(path: str) -> str:
    return "_".join(os.path.basename(path).split("_")[:2])  # llama_<size>


def flat(path: str) -> dict:
    with open(path, "rb") as f:
        return {f"{section}.{key}": value for section, table in tomllib.load(f).items() for key, value in table.items()}


def test_configs_match_their_generator():
    proc = subprocess.run(
        [sys.executable, "scripts/make_configs.py", "--check"], cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_all_sizes_and_optimizers_are_shipped():
    names = {os.path.basename(p) for p in PAPER_CONFIGS}
    for size in ("160m", "1b", "8b"):
        for opt in ("adamw", "gpa", "diloco"):
            assert f"llama_{size}_{opt}.toml" in names
    assert {"llama_160m_muon.toml", "llama_160m_gpa_muon.toml"} <= names  # Muon and GPA-Muon: the 160M size only


def test_configs_share_sections_in_one_order():
    def sections(path):
        return [line.strip() for line in open(path) if line.startswith("[")]

    reference = sections(os.path.join(REPO, "configs", "debug_cpu.toml"))
    for path in PAPER_CONFIGS:
        assert sections(path) == reference, path


def differences(path: str) -> set[str]:
    """The keys in which ``path`` differs from the config of its size that runs (missing keys too)."""
    ran, this = flat(os.path.join(REPO, "configs", RUN[size_of(path)])), flat(path)
    return {key for key in set(ran) | set(this) if ran.get(key, None) != this.get(key, None)}


def test_the_configs_of_a_size_differ_only_in_the_optimizer():
    """So the one config per size that runs below stands for the others of its size."""
    assert set(RUN) == {size_of(p) for p in PAPER_CONFIGS}
    for path in PAPER_CONFIGS:
        assert differences(path) <= OPTIMIZER_KEYS, f"{os.path.basename(path)}: {differences(path)}"


def test_the_difference_check_sees_another_key(tmp_path):
    text = open(os.path.join(REPO, "configs", "llama_1b_adamw.toml")).read().replace("max_norm = 1.0", "max_norm = 2.0")
    changed = tmp_path / "llama_1b_adamw.toml"
    changed.write_text(text)
    assert differences(str(changed)) == {"job.dump_folder", "job.description", "optimizer.name", "training.max_norm"}


# The configs need no activation checkpointing (scripts/memory_plan.py); these runs still
# exercise TorchTitan's AC modes through this trainer, one mode per model size.
AC_EXERCISED = {"llama_160m": "none", "llama_1b": "selective", "llama_8b": "full"}


@pytest.mark.parametrize("name", sorted(RUN.values()))
def test_paper_config_runs_three_steps_on_cpu(tmp_path, demo_assets, name):
    path = os.path.join(REPO, "configs", name)
    dump = str(tmp_path / "run")
    ac_mode = AC_EXERCISED[size_of(path)]
    args = [
        "--job.config_file", path, "--job.dump_folder", dump, "--job.stop_after_steps", "3",
        "--model.flavor", "debug", "--model.hf_assets_path", demo_assets,
        "--training.dataset", "demo", "--training.dataset_path", demo_assets,
        "--validation.dataset", "demo", "--validation.dataset_path", demo_assets,
        "--training.local_batch_size", "2", "--training.global_batch_size", "8",  # 2 ranks x 2 x 2 accumulation
        "--validation.local_batch_size", "2", "--training.seq_len", "64", "--validation.seq_len", "64",
        "--activation_checkpoint.mode", ac_mode,
    ]
    proc = run_trainer(2, args)
    out = proc.stdout + proc.stderr
    assert "gradient accumulation steps 2" in out
    assert "validate step:  1" in out
    assert "stop_after_steps = 3: stopped at step 3 with a checkpoint" in out
    if ac_mode != "none":
        assert f"Applied {ac_mode} activation checkpointing" in out, "AC was not applied"
    assert os.path.exists(os.path.join(dump, "checkpoint", "step-3", ".metadata"))
    assert os.path.exists(os.path.join(dump, "run_info.json"))
