"""Running the real TorchTitan trainer from tests, and reading what it logged."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import torch
from gpa_titan.analysis import read_tensorboard

from helpers import REPO

CONFIG = os.path.join(REPO, "configs", "debug_cpu.toml")
TRAIN_LOSS = "loss_metrics/global_avg_loss"
VAL_LOSS = "validation_metrics/loss"


def tiny_args(dump: str, assets: str, steps: int = 30, *extra: str) -> list[str]:
    return [
        "--job.config_file", CONFIG,
        "--job.dump_folder", dump,
        "--model.hf_assets_path", assets,
        "--training.dataset_path", assets,
        "--validation.dataset_path", assets,
        "--training.steps", str(steps),
        "--training.seq_len", "64",
        "--training.local_batch_size", "4",
        "--validation.seq_len", "64",
        "--validation.local_batch_size", "4",
        "--validation.steps", "3",
        "--validation.freq", "10",
        "--lr_scheduler.warmup_steps", "5",
        "--metrics.log_freq", "1",
        "--metrics.enable_tensorboard",
        "--checkpoint.enable",
        "--checkpoint.interval", "10",
        *extra,
    ]


def trainer_cmd(nproc: int, args: list[str]) -> list[str]:
    if nproc == 1:
        return [sys.executable, "-m", "gpa_titan.train", *args]
    return [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--standalone",
            "-m", "gpa_titan.train", *args]


def env() -> dict:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "WANDB_MODE": "offline"}


def run_trainer(nproc: int, args: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run(trainer_cmd(nproc, args), cwd=REPO, env=env(), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"trainer failed ({proc.returncode}):\n{proc.stdout[-5000:]}\n{proc.stderr[-8000:]}")
    return proc


def run_until_checkpoint(nproc: int, args: list[str], checkpoint_dir: str, timeout: float = 600) -> None:
    """Start the trainer and SIGKILL it (all ranks) once ``checkpoint_dir`` is complete."""
    proc = subprocess.Popen(trainer_cmd(nproc, args), cwd=REPO, env=env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + timeout
    try:
        while not os.path.exists(os.path.join(checkpoint_dir, ".metadata")):
            if proc.poll() is not None:
                raise AssertionError(f"trainer exited ({proc.returncode}) before writing {checkpoint_dir}")
            if time.time() > deadline:
                raise AssertionError("timed out waiting for the checkpoint")
            time.sleep(0.05)
    finally:
        for pid in [proc.pid, *descendants(proc.pid)]:  # torchrun's workers may leave its group
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        proc.wait()


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def scalars(dump: str, tag: str) -> dict[int, float]:
    """step -> value of ``tag`` over all TensorBoard files of a run (later files win)."""
    return read_tensorboard(dump, tag)


def independent_validation_loss(checkpoint: str, args: list[str], world: int) -> float:
    """The validation loss of the weights stored in ``checkpoint``, computed here with a
    plain unsharded model on the fixed set of every rank of a ``world``-rank run."""
    import torch.distributed.checkpoint as dcp
    from torchtitan.components.loss import cross_entropy_loss
    from torchtitan.config import ConfigManager
    from torchtitan.models.llama3 import Transformer

    from gpa_titan.data.builders import build_tokenizer, build_validation_batches
    from gpa_titan.models import FLAVORS

    cfg = ConfigManager().parse_args(args)
    model_args = FLAVORS[cfg.model.flavor]
    model_args.update_from_config(cfg)
    model = Transformer(model_args)
    with torch.no_grad():
        model.init_weights()  # also fills the rope buffer
    state = model.state_dict()
    dcp.load(state, checkpoint_id=checkpoint)
    model.load_state_dict(state)
    model.eval()
    tokenizer = build_tokenizer(cfg)
    per_rank = [build_validation_batches(world, r, tokenizer, cfg) for r in range(world)]
    losses = []
    with torch.no_grad():
        for batch_group in zip(*per_rank):
            total = sum(cross_entropy_loss(model(x), y).item() for x, y in batch_group)
            tokens = sum(y.numel() for _, y in batch_group)
            losses.append(total / tokens)
    return sum(losses) / len(losses)
