"""What the tests share: a test problem for the optimizers, and running the real trainer,
torchrun and scripts in processes (and reading what they logged)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time

import torch

from gpa_titan.analysis.logs import TRAIN_LOSS, VAL_LOSS, read_tensorboard  # noqa: F401  (re-exported)
from gpa_titan.paths import REPO_ROOT
from gpa_titan.study.run_args import short_run_args

REPO = REPO_ROOT


# ---------------------------------------------------------------------- optimizer problems
def warmup_cosine(step: int, total: int, peak: float, warmup_frac: float = 0.1) -> float:
    """The paper's schedule: linear warmup over 10% of the steps, then cosine to 0."""
    warmup = max(1, int(total * warmup_frac))
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * 0.5 * (1 + math.cos(math.pi * progress))


class QuadraticProblem:
    """Gradients g_t(w) = a * (w - c) + noise_t, fixed per step, so they never vanish
    (AdamW's direction stays well conditioned) yet depend on where they are taken."""

    shapes = [(16, 8), (8,), (4, 4, 3), (33,)]

    def __init__(self, steps: int, seed: int = 0):
        gen = torch.Generator().manual_seed(seed)
        self.init = [torch.randn(s, generator=gen) for s in self.shapes]
        self.a = [torch.rand(s, generator=gen, dtype=torch.float64) * 1.5 + 0.5 for s in self.shapes]
        self.c = [torch.randn(s, generator=gen, dtype=torch.float64) for s in self.shapes]
        self.noise = [
            [0.5 * torch.randn(s, generator=gen, dtype=torch.float64) for s in self.shapes] for _ in range(steps)
        ]

    def grads(self, weights, t: int):
        return [
            (a * (w.to(torch.float64) - c) + n).to(w.dtype)
            for w, a, c, n in zip(weights, self.a, self.c, self.noise[t], strict=True)
        ]


def ieee_float32_step(y, z, g, m, v, coefs, fma_in_y=False):
    """The GPA-AdamW update of one tensor with every operation rounded once to float32, in
    the Triton kernel's order, as IEEE-754 prescribes (each op is done in float64 on float32
    values, then rounded: exact for +, -, *, / and sqrt, since 53 >= 2 * 24 + 2). Returns
    y, z, m, v in float32; rounded once to a bf16 storage dtype they are what the kernel's
    store writes. The kernel must equal this bit for bit: it contracts no mul+add
    (``enable_fp_fusion=False``) and uses ``sqrt_rn``/``div_rn``. (torch's own CPU sqrt is
    not a reference: its vectorised sqrt may be one ulp off.) ``fma_in_y`` skips the
    rounding of ``u * c7`` before its add, as FMA contraction would, to show that a
    comparison sees the difference."""
    def r(t):  # round to float32, keep computing in float64
        return t.to(torch.float32).to(torch.float64)

    c = [r(torch.tensor(x, dtype=torch.float64)) for x in coefs]
    y, z, g, m, v = (t.to(torch.float64) for t in (y, z, g, m, v))
    m = r(m + r(r(g - m) * c[0]))
    v = r(r(v * c[1]) + r(r(g * g) * c[2]))
    u = r(m / r(r(r(v.sqrt()) * c[3]) + c[4]))
    yz = r(r(y * c[5]) + r(z * c[6]))
    y = r(yz + (u * c[7] if fma_in_y else r(u * c[7])))
    z = r(r(z - r(z * c[8])) + r(u * c[9]))
    return [t.to(torch.float32) for t in (y, z, m, v)]


# ---------------------------------------------------------------------- processes
def process_env(extra: dict | None = None) -> dict:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "WANDB_MODE": "offline", **(extra or {})}


def run(cmd: list[str], timeout: float = 600, env: dict | None = None, cwd: str = REPO) -> subprocess.CompletedProcess:
    """Run ``cmd``; fail the test with its output when it exits non-zero."""
    proc = subprocess.run(cmd, cwd=cwd, env=process_env(env), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(
            f"command failed ({proc.returncode}): {' '.join(cmd)}\n--- stdout ---\n{proc.stdout[-6000:]}"
            f"\n--- stderr ---\n{proc.stderr[-8000:]}"
        )
    return proc


def torchrun_cmd(nproc: int, args: list[str]) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--standalone", *args]


def trainer_cmd(nproc: int, args: list[str]) -> list[str]:
    if nproc == 1:
        return [sys.executable, "-m", "gpa_titan.train", *args]
    return torchrun_cmd(nproc, ["-m", "gpa_titan.train", *args])


def run_trainer(nproc: int, args: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    return run(trainer_cmd(nproc, args), timeout=timeout)


def tiny_args(dump: str, assets: str, steps: int = 30, *extra: str) -> list[str]:
    """A tiny demo run into ``dump``: checkpoints every 10 steps, validation every 10."""
    args = short_run_args(dump, data=assets, tokenizer=assets, steps=steps, seq_len=64, batch=4, val_batches=3,
                          val_every=10, warmup=5, log_freq=1, checkpoint_interval=10)
    return [*args, *extra]


def run_until_checkpoint(nproc: int, args: list[str], checkpoint_dir: str, timeout: float = 600) -> None:
    """Start the trainer and SIGKILL it (all ranks) once ``checkpoint_dir`` is complete."""
    proc = subprocess.Popen(trainer_cmd(nproc, args), cwd=REPO, env=process_env(), stdout=subprocess.DEVNULL,
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

    from gpa_titan.titan.dataloader import build_tokenizer, build_validation_batches
    from gpa_titan.titan.models import flavor_args

    cfg = ConfigManager().parse_args(args)
    model = Transformer(flavor_args(cfg.model.flavor, cfg))
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
        for batch_group in zip(*per_rank, strict=True):
            total = sum(cross_entropy_loss(model(x), y).item() for x, y in batch_group)
            tokens = sum(y.numel() for _, y in batch_group)
            losses.append(total / tokens)
    return sum(losses) / len(losses)
