"""Kill a 2-rank run after a checkpoint, resume it: the remaining losses match an
uninterrupted run; and a 2-rank checkpoint resumes on 1 rank."""

import os
import shutil
import signal
import subprocess
import time

import pytest

from helpers import REPO, TRAIN_LOSS, process_env, run_trainer, run_until_checkpoint, scalars, tiny_args, trainer_cmd


@pytest.mark.parametrize("optimizer", ["GPA-AdamW", "DiLoCo-AdamW", "Muon", "GPA-Muon"])
def test_kill_and_resume_matches_uninterrupted_run(tmp_path, demo_assets, optimizer):
    # inner_steps=3: the step-20 checkpoint falls in the middle of a DiLoCo period
    extra = ("--optimizer.name", optimizer, "--optimizer.inner_steps", "3", "--checkpoint.interval", "20")
    full = str(tmp_path / "uninterrupted")
    run_trainer(2, tiny_args(full, demo_assets, 40, *extra))
    expected = scalars(full, TRAIN_LOSS)

    resumed = str(tmp_path / "killed")
    args = tiny_args(resumed, demo_assets, 40, *extra)
    run_until_checkpoint(2, args, os.path.join(resumed, "checkpoint", "step-20"))
    assert not os.path.exists(os.path.join(resumed, "checkpoint", "step-40")), "the run was not killed early"
    run_trainer(2, args)  # same command: resumes from the latest checkpoint
    got = scalars(resumed, TRAIN_LOSS)

    for step in range(21, 41):
        rel = abs(got[step] - expected[step]) / abs(expected[step])
        assert rel <= 1e-5, f"step {step}: resumed {got[step]} vs uninterrupted {expected[step]}"

    # The same checkpoint resumes on a single rank (FSDP2 shards -> one full copy).
    single = str(tmp_path / "one_rank")
    os.makedirs(os.path.join(single, "checkpoint"))
    shutil.copytree(os.path.join(resumed, "checkpoint", "step-20"), os.path.join(single, "checkpoint", "step-20"))
    # the same global batch of 8 sequences: 1 rank x 4 x 2 accumulation steps; 5 steps of the 40-step run; the
    # data position of 2 ranks cannot be carried to 1, so it is skipped on purpose
    proc = run_trainer(1, tiny_args(single, demo_assets, 40, *extra, "--training.global_batch_size", "8",
                                    "--job.stop_after_steps", "5", "--job.allow_resume_changes"))
    assert "Training starts at step 21" in proc.stdout + proc.stderr
    assert "written by 2 data-parallel rank(s) and this launch has 1" in proc.stdout + proc.stderr
    one = scalars(single, TRAIN_LOSS)
    assert sorted(one) == list(range(21, 26))
    assert one[21] < expected[1] - 1.0, "weights were not restored"
    assert abs(one[21] - expected[21]) < 0.5


def test_preemption_signal_checkpoints_and_the_rerun_resumes(tmp_path, demo_assets):
    dump = str(tmp_path / "run")
    args = tiny_args(dump, demo_assets, 400, "--checkpoint.interval", "1000")
    log_path = tmp_path / "log.txt"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(trainer_cmd(1, args), cwd=REPO, env=process_env(),
                                stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 300
        while "step:  5" not in log_path.read_text():
            assert proc.poll() is None and time.time() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.1)
        proc.send_signal(signal.SIGUSR1)
        assert proc.wait(timeout=300) == 0
    step = int(open(os.path.join(dump, "PREEMPTED")).read())
    assert 5 <= step < 400
    assert os.path.exists(os.path.join(dump, "checkpoint", f"step-{step}", ".metadata"))
    os.remove(os.path.join(dump, "PREEMPTED"))  # what slurm/train.sbatch does before requeueing
    proc = run_trainer(1, [*args, "--job.stop_after_steps", "3"])  # the same run, resumed for 3 steps
    assert f"Training starts at step {step + 1}" in proc.stdout + proc.stderr
