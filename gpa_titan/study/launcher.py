"""Running benchmark and study runs: one ``python -m gpa_titan.train`` process per run, on
one CPU thread each (so that ``--jobs N`` processes share N cores without oversubscribing),
its output in ``<dump>/train.log``, and a record of how it went in ``<dump>/bench_run.json``
(the exact command, wall and CPU seconds, the final validation loss or that it diverged:
the trainer's exit code ``EXIT_DIVERGED``).

Every mode (grid, study, confirm) starts its runs through ``run_or_reuse``, the one check of
"is this finished run exactly these settings": a run whose dump folder already holds that
command's finished run is not repeated (its validation loss at the last step, or its
divergence, is read back); an unfinished one is removed and started again; a folder that
holds a different command's run is an error.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gpa_titan.analysis.logs import VAL_LOSS, read_tensorboard
from gpa_titan.data.demo import train_bpe_tokenizer
from gpa_titan.data.documents import find_shards
from gpa_titan.optim.hyperparameters import HyperparameterError
from gpa_titan.optim.registry import check_fields
from gpa_titan.paths import REPO_ROOT
from gpa_titan.runs import EXIT_DIVERGED

from .planner import RunRequest, RunResult
from .run_args import short_run_args
from .spec import optimizer_fields

RECORD = "bench_run.json"
LOG = "train.log"
# one thread per run: torch's intra-op pool (OpenMP), BLAS, and the tokenizers' Rust pool
SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                     "TOKENIZERS_PARALLELISM": "false"}


def log(message: str) -> None:
    """A progress line, at once (runs print from several threads)."""
    print(message, flush=True)


class BenchError(RuntimeError):
    """A run failed for a reason other than divergence, or a dump folder is not this run's."""


def run_env(device: str, threads_per_run: int | None = 1) -> dict[str, str]:
    """The environment of a run's process: unbuffered, W&B offline, no GPU for ``cpu``, and
    ``threads_per_run`` CPU threads (None: leave the threading as it is)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "WANDB_MODE": "offline"}
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    if threads_per_run is not None:
        env |= {k: (str(threads_per_run) if k != "TOKENIZERS_PARALLELISM" else v) for k, v in SINGLE_THREAD_ENV.items()}
    return env


def optimizer_cli(fields: dict[str, Any]) -> list[str]:
    """``[optimizer]`` values as trainer flags: ``--optimizer.lr 0.004``; a bool as the flag
    (``--optimizer.nesterov``) or its negation (``--optimizer.no-nesterov``), as tyro takes it."""
    args = []
    for key, value in fields.items():
        if isinstance(value, bool):
            args.append(f"--optimizer.{key}" if value else f"--optimizer.no-{key}")
        else:
            args += [f"--optimizer.{key}", f"{value:.8g}" if isinstance(value, float) else str(value)]
    return args


def trainer_args(dump: str, data: str, tokenizer: str, setup: dict[str, Any], fields: dict[str, Any],
                 seed: int) -> list[str]:
    """The trainer's command line for one run (``configs/debug_cpu.toml`` plus overrides)."""
    args = short_run_args(
        dump, data=data, tokenizer=tokenizer, steps=setup["steps"], seq_len=setup["seq_len"], batch=setup["batch"],
        val_batches=setup["val_batches"], val_every=setup["val_every"], log_freq=setup["val_every"], dataset="c4",
        flavor=setup["flavor"], vocab_size=setup["vocab_size"], seed=seed,
    )
    return args + optimizer_cli(fields)


def ensure_tokenizer(data: str, out_dir: str, vocab_size: int, max_documents: int) -> str:
    """A byte-level BPE of ``vocab_size`` tokens trained on the first ``max_documents`` documents
    of ``data``'s training split, in ``out_dir/tokenizer_<vocab>`` (made once)."""
    path = os.path.join(out_dir, f"tokenizer_{vocab_size}")
    if not os.path.exists(os.path.join(path, "tokenizer.json")):
        os.makedirs(path, exist_ok=True)
        print(f"training a {vocab_size}-token BPE on {data} ...", flush=True)
        train_bpe_tokenizer(find_shards(data, "train", key="--data")[0], path, vocab_size, max_documents)
    return path


@dataclass
class Launcher:
    """Starts runs of ``gpa_titan.train`` (thread-safe: ``execute`` is called by ``--jobs`` workers).

    Args:
        out (str): the study's folder; runs go to ``out/runs/<stage>/<name>``.
        data_for_stage (dict): the data folder of each stage ("tuning": the carved split, "final": --data).
        tokenizer (str): the tokenizer folder.
        setup (dict): the runs' setup (``gpa_titan.study.spec.SETUP_DEFAULTS``'s keys).
        device (str, default "cpu"): "cpu" or "cuda".
        threads_per_run (int | None, default 1): CPU threads per run (None: the process's default).
        log (Callable, default print): where progress lines go.
    """

    out: str
    data_for_stage: dict[str, str]
    tokenizer: str
    setup: dict[str, Any]
    device: str = "cpu"
    threads_per_run: int | None = 1
    log: Callable[[str], None] = print

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.launched = 0
        self.results: dict[str, RunResult] = {}

    def dump(self, request: RunRequest) -> str:
        return os.path.join(self.out, "runs", request.stage, request.name)

    def fields(self, request: RunRequest) -> dict[str, Any]:
        fields = optimizer_fields(request.method, request.knobs, self.setup)
        try:
            check_fields(fields)
        except HyperparameterError as e:
            raise BenchError(f"{request.name}: {e}") from None
        return fields

    def command(self, request: RunRequest) -> list[str]:
        dump = self.dump(request)
        args = trainer_args(dump, self.data_for_stage[request.stage], self.tokenizer, self.setup,
                            self.fields(request), request.seed)
        return trainer_command(args)

    def execute(self, request: RunRequest) -> RunResult:
        def announce() -> int:
            with self._lock:
                self.launched += 1
                number = self.launched
            self.log(f"[run {number}] {request.stage}: {request.name} ...")
            return number

        def report(number: int, result: RunResult) -> None:
            state = "diverged" if result.diverged else f"final validation loss {result.final:.4f}"
            self.log(f"[run {number}] {request.name}: {state} ({result.wall_s:.0f} s, "
                     f"{result.cpu_s / max(result.wall_s, 1e-9):.2f} CPU-s per s)")

        result = run_or_reuse(self.dump(request), self.command(request)[3:], self.setup["steps"],
                              run_env(self.device, self.threads_per_run), announce, report)
        with self._lock:
            self.results[request.key] = result
        return result


def _read_record(dump: str) -> dict | None:
    path = os.path.join(dump, RECORD)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def _checkout_independent(args: list[str]) -> list[str]:
    """``args`` with the config file named relative to its checkout (``configs/<name>.toml``), so
    that a study moved to another clone of this repo still recognises its finished runs."""
    out = list(args)
    for i, arg in enumerate(out[:-1]):
        if arg == "--job.config_file":
            path = out[i + 1]
            out[i + 1] = os.path.join(os.path.basename(os.path.dirname(path)), os.path.basename(path))
    return out


def finished_result(dump: str, args: list[str], steps: int) -> RunResult | None:
    """The result of a finished run of ``args`` in ``dump``, or None (and an unfinished run's
    folder removed) if it has to run; ``BenchError`` if ``dump`` holds a run of other arguments."""
    if not os.path.isdir(dump):
        return None
    record = _read_record(dump)
    if record is not None and _checkout_independent(record.get("args", [])) != _checkout_independent(args):
        raise BenchError(f"{dump} holds a run of other settings (its {RECORD} has other arguments: another "
                         "--data, setup or spec wrote there); use another --out, or remove that folder")
    if record is not None and record.get("diverged"):
        return RunResult(float("inf"), {}, True, record.get("wall_s", 0.0), record.get("cpu_s", 0.0))
    curve = read_tensorboard(dump, VAL_LOSS)
    if record is not None and steps in curve:
        return RunResult(curve[steps], curve, False, record.get("wall_s", 0.0), record.get("cpu_s", 0.0))
    shutil.rmtree(dump)  # unfinished (killed, or started by an older version): start again
    return None


def trainer_command(args: list[str]) -> list[str]:
    """The trainer's process for ``args`` (``finished_result`` compares the arguments after these three)."""
    return [sys.executable, "-m", "gpa_titan.train", *args]


def run_or_reuse(dump: str, args: list[str], steps: int, env: dict[str, str],
                 before: Callable[[], Any] = lambda: None,
                 after: Callable[[Any, RunResult], None] = lambda token, result: None) -> RunResult:
    """The result of the trainer run of ``args`` into ``dump``: read back if ``dump`` holds exactly
    that finished run, else (re)started (``before()`` first, ``after(its return value, result)``
    once it ended); ``BenchError`` if ``dump`` holds a run of other arguments."""
    result = finished_result(dump, args, steps)
    if result is None:
        token = before()
        result = launch(dump, trainer_command(args), steps, env)
        after(token, result)
    return result


def launch(dump: str, cmd: list[str], steps: int, env: dict[str, str]) -> RunResult:
    """Run the trainer into ``dump``; the result, and ``bench_run.json`` beside its logs."""
    os.makedirs(dump, exist_ok=True)
    start = time.time()
    with open(os.path.join(dump, LOG), "w") as log:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall, cpu = time.time() - start, usage.ru_utime + usage.ru_stime
    with open(os.path.join(dump, LOG), errors="replace") as f:
        tail = f.read()[-20000:]
    diverged = proc.returncode == EXIT_DIVERGED
    curve = read_tensorboard(dump, VAL_LOSS) if proc.returncode == 0 else {}
    if proc.returncode != 0 and not diverged:
        raise BenchError(f"run {dump} failed (exit {proc.returncode}); the end of {os.path.join(dump, LOG)}:\n"
                         + tail[-4000:])
    if not diverged and steps not in curve:
        raise BenchError(f"run {dump} ended without a validation loss at step {steps}; see {os.path.join(dump, LOG)}")
    record = {"args": cmd[3:], "wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "diverged": diverged,
              "final": None if diverged else curve[steps]}
    with open(os.path.join(dump, RECORD), "w") as f:
        json.dump(record, f, indent=1)
    return RunResult(float("inf") if diverged else curve[steps], curve, diverged, wall, cpu, launched=True)
