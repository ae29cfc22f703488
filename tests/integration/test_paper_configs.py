"""The paper's configs: generated from one table, and each runs 3 steps on CPU with only
the flavor, batch shape and data made tiny (schedule, clipping, validation, AC, compile
and checkpointing stay as the config sets them)."""

import glob
import os
import subprocess
import sys

import pytest

from helpers import REPO, run_trainer

PAPER_CONFIGS = sorted(glob.glob(os.path.join(REPO, "configs", "llama_*.toml")))


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


# The configs need no activation checkpointing (scripts/memory_plan.py); these runs still
# exercise TorchTitan's AC modes through this trainer, one mode per model size.
AC_EXERCISED = {"llama_160m": "none", "llama_1b": "selective", "llama_8b": "full"}


@pytest.mark.parametrize("path", PAPER_CONFIGS, ids=os.path.basename)
def test_paper_config_runs_three_steps_on_cpu(tmp_path, demo_assets, path):
    dump = str(tmp_path / "run")
    ac_mode = AC_EXERCISED["_".join(os.path.basename(path).split("_")[:2])]  # llama_<size>
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
