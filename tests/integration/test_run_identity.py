"""One run per dump folder, resumes that compute what the checkpoint's run computed, and
checkpoint folders that fail early and fall back cleanly."""

import glob
import json
import os
import subprocess

import pytest

from gpa_titan.titan.run_identity import DumpFolderLock
from helpers import REPO, process_env, run_trainer, tiny_args, trainer_cmd


def launch(args):
    """Run the trainer; return (exit code, stderr + stdout)."""
    proc = subprocess.run(trainer_cmd(1, args), cwd=REPO, env=process_env(), capture_output=True, text=True,
                          timeout=600)
    return proc.returncode, proc.stderr + proc.stdout


def checkpoint_copy(dump: str, other: str) -> str:
    """A new dump folder whose checkpoint folder links to ``dump``'s step-10 checkpoint."""
    os.makedirs(os.path.join(other, "checkpoint"))
    os.symlink(os.path.join(dump, "checkpoint", "step-10"), os.path.join(other, "checkpoint", "step-10"))
    return other


@pytest.fixture
def gpa_run(tmp_path, demo_assets):
    """A GPA run (lr 0.003, mu_x 0.9, whatever the demo config's tuned values) stopped at step 10
    with a checkpoint there."""
    dump = str(tmp_path / "run")
    args = tiny_args(dump, demo_assets, 20, "--optimizer.name", "GPA-AdamW", "--job.stop_after_steps", "10",
                     "--optimizer.lr", "0.003", "--optimizer.mu_x", "0.9")
    run_trainer(1, args)
    assert os.path.exists(os.path.join(dump, "checkpoint", "step-10", ".metadata"))
    return dump, args


def test_resume_with_changed_math_is_refused_naming_each_key(gpa_run):
    dump, args = gpa_run
    code, out = launch([*args, "--optimizer.mu_x", "0.5", "--optimizer.lr", "0.01"])
    assert code == 2 and "Traceback" not in out, out[-2000:]
    assert f"--job.dump_folder {dump} holds another run" in out
    assert "optimizer.lr: 0.003 -> 0.01" in out and "optimizer.mu_x: 0.9 -> 0.5" in out
    assert "--job.allow_resume_changes" in out


def test_resume_with_changes_on_purpose_is_logged_and_recorded(gpa_run):
    dump, args = gpa_run
    code, out = launch([*args, "--optimizer.lr", "0.002", "--job.allow_resume_changes"])
    assert code == 0, out[-3000:]
    assert "Training starts at step 11" in out
    assert "optimizer.lr changes from 0.003 to 0.002" in out
    launches = json.load(open(os.path.join(dump, "run_info.json")))["launches"]
    assert len(launches) == 2 and launches[0]["changed"] == []
    assert launches[1]["changed"] == [{"key": "optimizer.lr", "from": 0.003, "to": 0.002}]


def test_settings_that_do_not_change_the_math_may_differ(gpa_run):
    dump, args = gpa_run
    code, out = launch([*args, "--metrics.log_freq", "5", "--validation.freq", "5", "--checkpoint.interval", "7"])
    assert code == 0 and "Training starts at step 11" in out, out[-3000:]
    assert len(json.load(open(os.path.join(dump, "run_info.json")))["launches"]) == 2


def test_checkpoint_of_another_optimizer_says_how_to_warm_start(gpa_run, tmp_path, demo_assets):
    other = checkpoint_copy(gpa_run[0], str(tmp_path / "adamw"))
    code, out = launch(tiny_args(other, demo_assets, 20, "--optimizer.name", "AdamW"))
    assert code == 2, out[-2000:]
    assert "was written by GPA-AdamW and this run uses AdamW" in out
    assert "--checkpoint.initial_load_model_only" in out


def test_a_second_concurrent_run_in_one_folder_is_refused(tmp_path, demo_assets):
    dump = str(tmp_path / "run")
    lock = DumpFolderLock(dump)  # as a running trainer holds it
    code, out = launch(tiny_args(dump, demo_assets, 5))
    assert code == 2 and f"--job.dump_folder {dump} is in use by another run (pid {os.getpid()}" in out, out[-2000:]
    del lock


def test_a_finished_run_says_it_is_complete(tmp_path, demo_assets):
    dump = str(tmp_path / "run")
    args = tiny_args(dump, demo_assets, 10)
    run_trainer(1, args)
    code, out = launch(args)
    assert code == 0, out[-3000:]
    assert "This run is complete" in out and "nothing to do" in out and "Missing key" not in out


def test_a_corrupt_latest_checkpoint_falls_back_to_the_previous_one(gpa_run):
    dump, args = gpa_run
    run_trainer(1, [*args, "--job.stop_after_steps", "5", "--checkpoint.interval", "5"])  # writes step-15
    shard = sorted(glob.glob(os.path.join(dump, "checkpoint", "step-15", "*.distcp")))[0]
    with open(shard, "r+b") as f:
        f.truncate(os.path.getsize(shard) // 2)
    code, out = launch([*args, "--job.stop_after_steps", "2"])
    assert code == 0, out[-3000:]
    assert f"The checkpoint {os.path.join(dump, 'checkpoint', 'step-15')} cannot be read" in out
    assert "falling back to the previous complete one, step-10" in out and "Training starts at step 11" in out


def test_an_unwritable_checkpoint_folder_fails_at_start_up(tmp_path, demo_assets):
    dump = str(tmp_path / "run")
    os.makedirs(dump)
    open(os.path.join(dump, "checkpoint"), "w").close()  # a file where the folder must go
    code, out = launch(tiny_args(dump, demo_assets, 5))
    assert code == 2 and "[checkpoint] folder" in out and "cannot be written" in out, out[-2000:]
    assert "step:  1" not in out


def test_fewer_steps_than_the_checkpoint_holds_is_refused(gpa_run, tmp_path, demo_assets):
    other = checkpoint_copy(gpa_run[0], str(tmp_path / "copy"))
    code, out = launch(tiny_args(other, demo_assets, 5, "--optimizer.name", "GPA-AdamW"))
    assert code == 2, out[-2000:]
    assert "holds step-10, beyond [training] steps = 5" in out
