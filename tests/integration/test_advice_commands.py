"""Every command the trainer's messages advise is run here, exactly as printed, and does what the
message says: extending a finished run (its final export is kept), warm starts, continuing after a
divergence, scaling a run to another number of ranks; and messages that say something happened
(saved, stopped) are true."""

import filecmp
import gzip
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time

import pytest

from helpers import REPO, TRAIN_LOSS, process_env, scalars, tiny_args, trainer_cmd


def launch(args, nproc=1, timeout=600):
    """Run the trainer; return (exit code, stdout + stderr)."""
    proc = subprocess.run(trainer_cmd(nproc, args), cwd=REPO, env=process_env(), capture_output=True, text=True,
                          timeout=timeout)
    return proc.returncode, proc.stdout + proc.stderr


def advised(out: str, after: str) -> list[str]:
    """The arguments a message advises adding: the text between ``after`` and ``to this command``."""
    found = re.search(re.escape(after) + r" (.+?) to this command", out)
    assert found, f"no advice after {after!r} in:\n{out[-3000:]}"
    return shlex.split(found.group(1))


def same_files(a: str, b: str) -> bool:
    match, mismatch, errors = filecmp.cmpfiles(a, b, os.listdir(a), shallow=False)
    return not mismatch and not errors and sorted(match) == sorted(os.listdir(b))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, demo_assets):
    """A finished 20-step run: full checkpoints at 5, 10, 15 and the final model-only export step-20.
    Made once for this module; a test that changes the run works on a copy (``own_copy``)."""
    tmp_path = tmp_path_factory.mktemp("finished_run")
    dump = str(tmp_path / "run")
    args = tiny_args(dump, demo_assets, 20, "--checkpoint.interval", "5", "--checkpoint.keep_latest_k", "0",
                     "--checkpoint.last_save_model_only")
    code, out = launch(args)
    assert code == 0, out[-3000:]
    export = os.path.join(dump, "checkpoint", "step-20")
    saved = str(tmp_path / "export-copy")
    shutil.copytree(export, saved)
    code, out = launch(args)
    assert code == 0 and "This run is complete" in out, out[-3000:]
    return dump, args, out, saved


def own_copy(finished_run, tmp_path):
    """The finished run copied into ``tmp_path`` (same files), with its arguments pointing there."""
    dump, args, out, saved = finished_run
    copy = str(tmp_path / "run")
    shutil.copytree(dump, copy)
    return copy, [copy if a == dump else a for a in args], out, saved


def test_extending_a_finished_run_as_advised_keeps_its_final_export(finished_run, tmp_path):
    dump, args, out, saved = own_copy(finished_run, tmp_path)
    extend = advised(out, "(its final export step-20 is then kept as final-model-20): add")
    assert extend == ["--training.steps", "N", "--job.allow_resume_changes"], extend
    code, out = launch([*args, *[("30" if a == "N" else a) for a in extend]])
    assert code == 0, out[-3000:]
    kept = os.path.join(dump, "checkpoint", "final-model-20")
    assert f"Kept the final model-only export of the 20-step run as {kept}" in out
    assert "Training starts at step 16" in out and "Run complete at step 30/30" in out, out[-3000:]
    assert same_files(saved, kept), "the 20-step run's final model changed"
    assert os.path.exists(os.path.join(dump, "checkpoint", "step-30", ".metadata"))


def test_a_warm_start_as_advised_loads_the_final_weights(finished_run, tmp_path, demo_assets):
    dump, args, out, _ = finished_run
    warm = advised(out, "start a new run from its final weights (fresh optimizer state and schedule): add")
    assert warm[warm.index("--checkpoint.initial_load_path") + 1] == os.path.join(dump, "checkpoint", "step-20")
    code, out = launch([*args, *warm, "--training.steps", "3"])  # checkpoints on: the folder must not block it
    assert code == 0, out[-3000:]
    assert "Warm start: loaded the model weights" in out and "Training starts at step 1" in out
    new_dump = warm[warm.index("--job.dump_folder") + 1]
    fresh = scalars(dump, TRAIN_LOSS)[1]
    assert scalars(new_dump, TRAIN_LOSS)[1] < fresh - 1.0, "the warm start began from random weights"
    # the same with checkpoints off is refused at start-up, not ignored
    code, out = launch([*args, *warm, "--training.steps", "3", "--checkpoint.no-enable",
                        "--job.dump_folder", str(tmp_path / "off")])
    assert code == 2 and "initial_load_path" in out and "--checkpoint.enable" in out, out[-3000:]


def test_a_run_with_only_its_final_export_says_how_to_go_on(tmp_path, demo_assets):
    dump = str(tmp_path / "run")
    args = tiny_args(dump, demo_assets, 6, "--checkpoint.interval", "100", "--checkpoint.last_save_model_only")
    assert launch(args)[0] == 0
    code, out = launch([*args, "--training.steps", "12", "--job.allow_resume_changes"])
    assert code == 2 and "holds only step-6, the final model-only export" in out, out[-3000:]
    assert "Delete" not in out and "Traceback" not in out
    warm = advised(out, "start a new run: add")
    code, out = launch([*args, "--training.steps", "12", *warm])
    assert code == 0 and "Warm start: loaded the model weights" in out and "Run complete at step 12/12" in out


def test_a_changed_lr_on_purpose_is_the_lr_trained_with(tmp_path, demo_assets):
    base = tiny_args(str(tmp_path / "run"), demo_assets, 20, "--checkpoint.interval", "10",
                     "--job.stop_after_steps", "10", "--optimizer.lr", "0.003")
    assert launch(base)[0] == 0
    lrs = {}
    for lr in ("0.003", "0.0015"):
        dump = str(tmp_path / f"resumed-{lr}")
        shutil.copytree(str(tmp_path / "run"), dump)
        os.remove(os.path.join(dump, ".gpa_titan.lock"))
        code, out = launch([*base, "--job.dump_folder", dump, "--optimizer.lr", lr, "--job.allow_resume_changes",
                            "--job.stop_after_steps", "1"])
        assert code == 0 and "Training starts at step 11" in out, out[-3000:]
        lrs[lr] = scalars(dump, "lr")[11]
    assert lrs["0.0015"] == pytest.approx(lrs["0.003"] / 2, rel=1e-6), lrs


def test_continuing_after_a_divergence_as_advised(tmp_path, demo_assets):
    dump = str(tmp_path / "run")
    args = tiny_args(dump, demo_assets, 60, "--checkpoint.interval", "10", "--job.stop_after_steps", "10")
    assert launch(args)[0] == 0
    args += ["--optimizer.lr", "100", "--job.allow_resume_changes", "--job.stop_after_steps", "-1"]
    code, out = launch(args)  # the lr raised on purpose: diverges after step 10
    assert code == 3, out[-3000:]
    retry = advised(out, "with a lower learning rate, add")
    assert retry[retry.index("--checkpoint.initial_load_path") + 1] == os.path.join(dump, "checkpoint", "step-10")
    code, out = launch([*args, *retry, "--job.stop_after_steps", "3"])
    assert code == 0, out[-3000:]
    assert "Warm start: loaded the full state" in out and "Training starts at step 11" in out
    assert re.search(r"optimizer.lr changed from \S+ to 10\b", out), out[-3000:]
    assert scalars(retry[retry.index("--job.dump_folder") + 1], "lr")[11] < 10


def test_scaling_a_run_to_more_ranks_is_refused_up_front_or_done_on_purpose(tmp_path, demo_assets):
    dump = str(tmp_path / "run")
    args = tiny_args(dump, demo_assets, 20, "--checkpoint.interval", "10", "--job.stop_after_steps", "10",
                     "--training.global_batch_size", "8")
    assert launch(args)[0] == 0
    code, out = launch(args, nproc=2)
    assert code != 0 and "written by 1 data-parallel rank(s) and this launch has 2" in out, out[-3000:]
    assert "Delete" not in out and "Missing key" not in out
    code, out = launch([*args, "--job.allow_resume_changes", "--job.stop_after_steps", "2"], nproc=2)
    assert code == 0 and "Training starts at step 11" in out, out[-3000:]
    assert "the training data restarts from the start of the split" in out


def test_a_changed_model_shape_is_refused_even_when_changes_are_allowed(tmp_path, demo_assets):
    dump = str(tmp_path / "run")
    args = tiny_args(dump, demo_assets, 20, "--checkpoint.interval", "10", "--job.stop_after_steps", "10")
    assert launch(args)[0] == 0
    code, out = launch([*args, "--model.flavor", "small", "--model.vocab_size", "1024", "--job.allow_resume_changes"])
    assert code == 2 and "holds a model of another shape" in out and "model.flavor" in out, out[-3000:]
    assert "Delete" not in out and "Traceback" not in out


def test_an_initial_load_path_that_is_not_a_step_folder_says_which_to_give(tmp_path, finished_run, demo_assets):
    dump, args, _, _ = finished_run
    code, out = launch([*args, "--job.dump_folder", str(tmp_path / "new"),
                        "--checkpoint.initial_load_path", os.path.join(dump, "checkpoint")])
    assert code == 2 and "is not a checkpoint" in out and "step-15" in out, out[-3000:]


def test_preemption_with_checkpoints_off_says_nothing_was_saved(tmp_path, demo_assets):
    dump = str(tmp_path / "run")
    args = tiny_args(dump, demo_assets, 400, "--checkpoint.no-enable")  # as in the demo config
    log_path = tmp_path / "log.txt"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(trainer_cmd(1, args), cwd=REPO, env=process_env(), stdout=log,
                                stderr=subprocess.STDOUT)
        deadline = time.time() + 300
        while "step:  5" not in log_path.read_text():
            assert proc.poll() is None and time.time() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.1)
        proc.send_signal(signal.SIGUSR1)
        code = proc.wait(timeout=300)
    out = log_path.read_text()
    assert code == 4, out[-3000:]
    assert "nothing was saved" in out and "saved a checkpoint" not in out
    assert not os.path.exists(os.path.join(dump, "PREEMPTED")) and not os.path.exists(os.path.join(dump, "checkpoint"))
    assert os.path.exists(os.path.join(dump, "PREEMPTED_UNSAVED")), "slurm/train.sbatch reads it: no requeue"


def _shard(path, texts):
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for text in texts:
            f.write(json.dumps({"text": text}) + "\n")


def test_a_start_up_error_of_rank_1_alone_is_one_line_and_ends_the_job(tmp_path, demo_assets):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(os.path.join(demo_assets, "c4-train.00000-of-00001.json.gz"), data)
    shutil.copy(os.path.join(demo_assets, "c4-validation.00000-of-00001.json.gz"),
                data / "c4-validation.00000-of-00002.json.gz")  # rank 0's validation file
    _shard(data / "c4-validation.00001-of-00002.json.gz", ["too short"])  # rank 1's: too little text
    args = tiny_args(str(tmp_path / "run"), demo_assets, 5, "--checkpoint.no-enable", "--training.dataset", "c4",
                     "--validation.dataset", "c4", "--training.dataset_path", str(data),
                     "--validation.dataset_path", str(data))
    start = time.time()
    code, out = launch(args, nproc=2, timeout=300)
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert code != 0 and len(errors) == 1, out[-4000:]
    assert errors[0].startswith("error: [rank 1] The validation split has only 0 sequences"), errors
    assert "exitcode  : 2" in out and "]: Traceback" not in out, out[-4000:]  # no rank's traceback
    assert time.time() - start < 200


def test_a_blank_training_shard_on_two_ranks_is_one_line_not_a_hang(tmp_path, demo_assets):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(os.path.join(demo_assets, "c4-validation.00000-of-00001.json.gz"), data)
    with gzip.open(data / "c4-train.00000-of-00001.json.gz", "wt") as f:
        f.write("\n\n\n")
    args = tiny_args(str(tmp_path / "run"), demo_assets, 5, "--checkpoint.no-enable", "--training.dataset", "c4",
                     "--validation.dataset", "c4", "--training.dataset_path", str(data),
                     "--validation.dataset_path", str(data))
    code, out = launch(args, nproc=2, timeout=300)
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert code != 0 and len(errors) == 1, out[-4000:]
    assert "no document in a full pass over 1 shard" in errors[0] and "[rank" not in errors[0], errors
    assert "step:  1" not in out
