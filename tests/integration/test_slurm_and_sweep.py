"""slurm/train.sbatch, scripts/run_train.sh and scripts/sweep.py against stand-in
srun, scontrol and sbatch commands (no Slurm needed)."""

import os
import shlex
import stat
import subprocess
import sys

import pytest

from gpa_titan.optim.table4 import diloco_to_gpa
from helpers import REPO

FAKE_SRUN = r"""#!/bin/bash
echo "srun $*" >> "$FAKE_LOG"
# FAKE_PREEMPT=<file>: the trainer leaves that marker in its dump folder (PREEMPTED, PREEMPTED_UNSAVED)
if [ -n "${FAKE_PREEMPT:-}" ]; then
  marker=$([ "$FAKE_PREEMPT" = 1 ] && echo PREEMPTED || echo "$FAKE_PREEMPT")
  prev=""; for a in "$@"; do if [ "$prev" = "--job.dump_folder" ]; then touch "$a/$marker"; fi; prev="$a"; done
fi
exit ${FAKE_SRUN_STATUS:-0}
"""
FAKE_SCONTROL = r"""#!/bin/bash
if [ "$1 $2" = "show hostnames" ]; then printf 'gpu-node-017\ngpu-node-018\n'; exit 0; fi
echo "scontrol $*" >> "$FAKE_LOG"
"""
FAKE_SBATCH = r"""#!/bin/bash
echo "sbatch $*" >> "$FAKE_LOG"
echo "Submitted batch job 4242"
"""


@pytest.fixture
def slurm_env(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("srun", FAKE_SRUN), ("scontrol", FAKE_SCONTROL), ("sbatch", FAKE_SBATCH)):
        path = bin_dir / name
        path.write_text(body)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "calls.log"
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "FAKE_LOG": str(log),
        "SLURM_JOB_NUM_NODES": "2",
        "SLURM_JOB_NODELIST": "gpu-node-[017-018]",
        "SLURM_GPUS_ON_NODE": "8",
        "SLURM_JOB_ID": "777",
        "SLURM_JOB_NAME": "gpa",
        "SLURM_SUBMIT_DIR": REPO,
        "DUMP_FOLDER": str(tmp_path / "dump"),
        "PYTHON": "/opt/venv/bin/python",
    }
    return env, log, tmp_path


def sbatch(env, *args):
    return subprocess.run(["bash", "slurm/train.sbatch", *args], cwd=REPO, env=env, capture_output=True, text=True)


def test_sbatch_builds_the_torchrun_command_from_slurm(slurm_env):
    env, log, tmp = slurm_env
    proc = sbatch(env, "configs/llama_1b_gpa.toml", "--optimizer.lr", "2e-3")
    assert proc.returncode == 0, proc.stderr
    (line,) = log.read_text().splitlines()
    assert line.startswith("srun --kill-on-bad-exit=1 bash -c")
    for part in (
        "/opt/venv/bin/python -m torch.distributed.run",
        "--nnodes=2",
        "--nproc_per_node=8",
        "--rdzv_id=777",
        "--rdzv_backend=c10d",
        "--rdzv_endpoint=gpu-node-017:29500",
        "-m gpa_titan.train --job.config_file configs/llama_1b_gpa.toml",
        f"--job.dump_folder {tmp / 'dump'}",
        "--parallelism.data_parallel_replicate_degree 2",
    ):
        assert part in line, part
    assert line.endswith("--optimizer.lr 2e-3")
    assert (tmp / "dump" / "launched_config.toml").read_text() == open(
        os.path.join(REPO, "configs/llama_1b_gpa.toml")
    ).read()
    assert "torch.distributed.run" in (tmp / "dump" / "launch_command.txt").read_text()


def test_sbatch_single_node_keeps_fsdp_and_reads_gpu_count(slurm_env):
    env, log, _ = slurm_env
    env.update(SLURM_JOB_NUM_NODES="1", SLURM_GPUS_ON_NODE="h100:4")
    assert sbatch(env, "configs/llama_160m_gpa.toml").returncode == 0
    line = log.read_text()
    assert "--nnodes=1" in line and "--nproc_per_node=4" in line
    assert "data_parallel_replicate_degree" not in line


def test_sbatch_requeues_after_preemption(slurm_env):
    env, log, tmp = slurm_env
    env["FAKE_PREEMPT"] = "1"
    proc = sbatch(env, "configs/llama_160m_gpa.toml")
    assert proc.returncode == 0, proc.stderr
    assert "scontrol requeue 777" in log.read_text()
    assert not (tmp / "dump" / "PREEMPTED").exists()


UNSAVED = ("[train.sbatch] preempted with [checkpoint] enable = false: nothing was saved, so the job is not "
           "requeued; enable checkpoints (--checkpoint.enable) for runs that may be preempted")


@pytest.mark.parametrize("status,marker", [
    pytest.param("4", None, id="exit 4"),  # the trainer's exit code 4 reaches the script
    pytest.param("4", "PREEMPTED", id="exit 4 and PREEMPTED"),  # even with a PREEMPTED marker there too
    pytest.param("1", "PREEMPTED_UNSAVED", id="torchrun exit 1 and PREEMPTED_UNSAVED"),  # torchrun turns 4 into 1
])
def test_sbatch_does_not_requeue_a_preemption_that_saved_nothing(slurm_env, status, marker):
    env, log, tmp = slurm_env
    env["FAKE_SRUN_STATUS"] = status
    if marker:
        env["FAKE_PREEMPT"] = marker
    proc = sbatch(env, "configs/llama_160m_gpa.toml")
    assert proc.returncode == 4, proc.stderr
    assert UNSAVED in proc.stderr.splitlines()
    assert "scontrol requeue" not in log.read_text(), "a requeue would train from step 0 again"
    assert "resume from the latest checkpoint" not in proc.stderr and "training failed" not in proc.stderr
    assert not (tmp / "dump" / "PREEMPTED").exists() and not (tmp / "dump" / "PREEMPTED_UNSAVED").exists()


RUNS = "name\toverrides\nlr0.001\t--optimizer.lr 0.001\nlr0.003\t--optimizer.lr 0.003\n"


SWEEP_TASK_CASES = {  # id: (SLURM_ARRAY_TASK_ID, runs.tsv (None: no file), what the one error line says)
    "task past the last run": ("2", RUNS, "SLURM_ARRAY_TASK_ID=2 but {runs} lists 2 runs (0-1): this task is none "
                                          "of them, and nothing was trained. Submit the array as scripts/sweep.py "
                                          "does (--array=0-1)"),
    "task far past": ("17", RUNS, "SLURM_ARRAY_TASK_ID=17 but {runs} lists 2 runs (0-1)"),
    "negative task": ("-1", RUNS, "SLURM_ARRAY_TASK_ID=-1 but {runs} lists 2 runs (0-1)"),
    "task not a number": ("x", RUNS, "SLURM_ARRAY_TASK_ID=x but {runs} lists 2 runs (0-1)"),
    "task with a leading zero": ("08", RUNS, "SLURM_ARRAY_TASK_ID=08 but {runs} lists 2 runs (0-1)"),
    "no runs": ("0", "name\toverrides\n", "SLURM_ARRAY_TASK_ID=0 but {runs} lists 0 runs (none)"),
    "empty file": ("0", "", "is not a sweep's runs.tsv"),
    "no header": ("1", "lr0.001\t--optimizer.lr 0.001\n", "is not a sweep's runs.tsv"),
    "empty line": ("1", "name\toverrides\nlr0.001\t--optimizer.lr 0.001\n\nlr0.003\t--optimizer.lr 0.003\n",
                   "line 3 of {runs} (task 1) reads '', not <run name><TAB><overrides>"),
    "no name": ("0", "name\toverrides\n\t--optimizer.lr 0.001\n", "(task 0) reads '\t--optimizer.lr 0.001'"),
    "no tab": ("0", "name\toverrides\nlr0.001 --optimizer.lr 0.001\n", "not <run name><TAB><overrides>"),
    "name leaving the folder": ("0", "name\toverrides\n../escape\t--optimizer.lr 0.001\n",
                                "not <run name><TAB><overrides>"),
    "no task id": (None, RUNS, "SWEEP_FILE={runs} is set but SLURM_ARRAY_TASK_ID is not"),
    "no file": ("0", None, "SWEEP_FILE={runs} does not exist"),
}


@pytest.mark.parametrize("case", list(SWEEP_TASK_CASES))
def test_sbatch_refuses_a_sweep_task_that_is_not_one_of_its_runs(slurm_env, case):
    task, content, needle = SWEEP_TASK_CASES[case]
    env, log, tmp = slurm_env
    runs = tmp / "sweeps" / "s" / "runs.tsv"
    runs.parent.mkdir(parents=True)
    if content is not None:
        runs.write_text(content)
    env.update(SWEEP_FILE=str(runs))
    env.pop("DUMP_FOLDER")
    if task is not None:
        env["SLURM_ARRAY_TASK_ID"] = task
    proc = sbatch(env, "configs/llama_160m_gpa.toml")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith("train.sbatch: ") and needle.format(runs=runs) in line, line
    assert not log.exists(), "nothing was trained"
    assert sorted(p.name for p in runs.parent.iterdir()) == (["runs.tsv"] if content is not None else [])
    assert not (tmp / "outputs").exists() and not any(p.name.startswith("gpa-") for p in tmp.iterdir())


def test_sbatch_passes_on_a_failure_without_requeue(slurm_env):
    env, log, _ = slurm_env
    env["FAKE_SRUN_STATUS"] = "3"
    assert sbatch(env, "configs/llama_160m_gpa.toml").returncode == 3
    assert "requeue" not in log.read_text()


def test_sbatch_rejects_a_missing_config(slurm_env):
    env, _, _ = slurm_env
    proc = sbatch(env, "configs/nope.toml")
    assert proc.returncode == 2 and "configs/nope.toml does not exist" in proc.stderr


def test_run_train_sh_passes_environment_and_arguments(tmp_path):
    fake_python = tmp_path / "python"
    fake_python.write_text('#!/bin/bash\necho "$@" > "$FAKE_LOG"\n')
    fake_python.chmod(0o755)
    log = tmp_path / "log"
    env = {
        **os.environ,
        "PYTHON": str(fake_python),
        "FAKE_LOG": str(log),
        "NGPU": "4",
        "LOG_RANK": "0,1",
        "CONFIG_FILE": "configs/llama_160m_gpa.toml",
    }
    proc = subprocess.run(
        ["bash", "scripts/run_train.sh", "--training.steps", "10"], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    args = log.read_text()
    assert "-m torch.distributed.run --nproc_per_node=4" in args
    assert "--local-ranks-filter 0,1" in args
    assert args.strip().endswith("-m gpa_titan.train --job.config_file configs/llama_160m_gpa.toml --training.steps 10")


def sweep(env, *args):
    return subprocess.run(
        [sys.executable, "scripts/sweep.py", *args], cwd=REPO, env=env, capture_output=True, text=True
    )


def test_sweep_dry_run_maps_inner_steps_by_table_4(slurm_env):
    env, log, tmp = slurm_env
    proc = sweep(
        env,
        "--config",
        "configs/llama_160m_gpa.toml",
        "--name",
        "h",
        "--inner-steps",
        "8,32",
        "--mu-y",
        "0.8,0.9",
        "--out",
        str(tmp / "sweeps"),
        "--dry-run",
    )
    assert proc.returncode == 0, proc.stderr
    rows = (tmp / "sweeps" / "h" / "runs.tsv").read_text().splitlines()
    assert rows[0] == "name\toverrides" and len(rows) == 5
    mu_x8 = f"{diloco_to_gpa(8, 0.9)[0]:.6g}"
    assert rows[1] == f"H8_muy0.8\t--optimizer.mu_x {mu_x8} --optimizer.mu_y 0.8"
    assert "would submit: sbatch --array=0-3 --nodes=1 --job-name=h" in proc.stdout
    assert not log.exists(), "a dry run submits nothing"


def test_sweep_submits_an_array_that_train_sbatch_reads(slurm_env):
    env, log, tmp = slurm_env
    proc = sweep(
        env,
        "--config",
        "configs/llama_160m_diloco.toml",
        "--name",
        "d",
        "--inner-steps",
        "16,64",
        "--lr",
        "1e-3",
        "--parallel",
        "1",
        "--out",
        str(tmp / "sweeps"),
    )
    assert proc.returncode == 0, proc.stderr
    runs = tmp / "sweeps" / "d" / "runs.tsv"
    assert f"sbatch --array=0-1%1 --nodes=1 --job-name=d --export=ALL,SWEEP_FILE={runs}" in log.read_text()
    # array task 1 of that job
    env = {**env, "SWEEP_FILE": str(runs), "SLURM_ARRAY_TASK_ID": "1", "SLURM_JOB_NUM_NODES": "1"}
    env.pop("DUMP_FOLDER")
    assert sbatch(env, "configs/llama_160m_diloco.toml").returncode == 0
    srun_line = [line for line in log.read_text().splitlines() if line.startswith("srun")][0]
    assert srun_line.endswith("--optimizer.inner_steps 64 --optimizer.lr 0.001")
    assert f"--job.dump_folder {tmp / 'sweeps' / 'd' / 'H64_lr0.001'}" in srun_line


def submissions(log) -> int:
    return sum(line.startswith("sbatch ") for line in log.read_text().splitlines())


def test_sweep_refuses_to_overwrite_a_submitted_sweep(slurm_env):
    env, log, tmp = slurm_env
    out = str(tmp / "sweeps")
    base = ["--config", "configs/llama_160m_gpa.toml", "--name", "s", "--out", out]
    runs = tmp / "sweeps" / "s" / "runs.tsv"
    assert sweep(env, *base, "--lr", "1e-3", "--dry-run").returncode == 0
    assert sweep(env, *base, "--lr", "1e-3,3e-3", "--dry-run").returncode == 0, "a dry run may be redone"
    assert sweep(env, *base, "--lr", "1e-3,3e-3").returncode == 0, "and then submitted"
    submitted = runs.read_text()
    assert len(submitted.splitlines()) == 3 and submissions(log) == 1

    for extra in ([], ["--dry-run"]):
        again = sweep(env, *base, "--lr", "1e-2", *extra)
        assert again.returncode != 0
        assert f"error: {runs} already exists" in again.stderr
        assert "new --name" in again.stderr and f"remove {tmp / 'sweeps' / 's'}" in again.stderr
        assert "--force" in again.stderr and "Traceback" not in again.stderr
        assert runs.read_text() == submitted, "the submitted sweep's runs.tsv is untouched"
    assert submissions(log) == 1, "nothing more was submitted"

    forced = sweep(env, *base, "--lr", "1e-2", "--force")
    assert forced.returncode == 0, forced.stderr
    assert runs.read_text().splitlines()[1:] == ["lr0.01\t--optimizer.lr 0.01"]
    assert submissions(log) == 2


FAKE_SBATCH_RUNS = r"""#!/bin/bash
# submits "immediately": drops sbatch's own options and runs the script as job 778
while [ "${1#--}" != "$1" ]; do shift; done
SLURM_JOB_ID=778 exec bash "$@"
"""


@pytest.mark.parametrize("sweep_task", [False, True])
def test_sbatch_after_a_crash_prints_the_command_that_resumes_it(slurm_env, sweep_task):
    env, log, tmp = slurm_env
    env.update(FAKE_SRUN_STATUS="3")
    if sweep_task:  # array task 1 of a sweep: its dump folder comes from the sweep file
        runs = tmp / "sweeps" / "s" / "runs.tsv"
        runs.parent.mkdir(parents=True)
        runs.write_text("name\toverrides\nlr0.001\t--optimizer.lr 0.001\nlr0.003\t--optimizer.lr 0.003\n")
        env.update(SWEEP_FILE=str(runs), SLURM_ARRAY_TASK_ID="1")
        env.pop("DUMP_FOLDER")
        dump = tmp / "sweeps" / "s" / "lr0.003"
    else:
        dump = tmp / "dump"
    proc = sbatch(env, "configs/llama_160m_gpa.toml", "--training.steps", "50")
    assert proc.returncode == 3 and "requeue" not in log.read_text()
    (hint,) = [line for line in proc.stderr.splitlines() if "training failed (exit 3)" in line]
    assert f"resume from the latest checkpoint in {dump}" in hint
    command = shlex.split(hint.split(f"resubmit from {REPO}: ", 1)[1])
    assert "slurm/train.sbatch" in command and command[-3:] == ["configs/llama_160m_gpa.toml", "--training.steps", "50"]

    # resubmit it as printed, from a fresh environment (no DUMP_FOLDER, no sweep variables)
    fake = tmp / "bin" / "sbatch"
    fake.write_text(FAKE_SBATCH_RUNS)
    fresh = {k: v for k, v in env.items() if k not in ("DUMP_FOLDER", "SWEEP_FILE", "SLURM_ARRAY_TASK_ID")}
    fresh.update(FAKE_SRUN_STATUS="0")
    if sweep_task:  # what sbatch's --array and --export give the task
        assert "--array=1" in command and f"--export=ALL,SWEEP_FILE={runs},DUMP_FOLDER={dump}" in command
        fresh.update(SWEEP_FILE=str(runs), SLURM_ARRAY_TASK_ID="1")
    else:
        assert command[:2] == ["env", f"DUMP_FOLDER={dump}"]
    again = subprocess.run(command, cwd=REPO, env=fresh, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    first, second = [line for line in log.read_text().splitlines() if line.startswith("srun")]
    assert "--rdzv_id=777" in first and "--rdzv_id=778" in second, "a new job"
    for line in (first, second):
        assert f"--job.dump_folder {dump} " in line, "the same dump folder, so the new job resumes there"
        assert line.endswith("--training.steps 50")
