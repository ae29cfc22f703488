"""Convergence benchmark: AdamW vs GPA-AdamW vs DiLoCo-AdamW vs ScheduleFree-AdamW.

Trains a small Llama through this repo's trainer (``python -m gpa_titan.train``) on any
folder in C4's on-disk format, for each optimizer, learning rate of a shared grid, H (for
GPA mapped to mu_x = mu**(1/H) by Table 4) and seed, all with the same schedule (linear
warmup over 10% of the steps, cosine to 0) and budget. Then, for every (optimizer, H),
the learning rate with the best mean final validation loss is compared with AdamW's (when
``--optimizers`` includes it; otherwise the table has no speedup columns):

    python scripts/bench_convergence.py --data ../shared/data/peps --out runs/peps
    python scripts/bench_convergence.py --data DIR --device cuda --flavor 160M --vocab-size 32000 ...

Writes ``results.md`` (the table), ``validation_loss.png`` (one curve per optimizer, mean
over seeds with a ±1 std band), ``results.json`` and every run under ``runs/``; prints the
table last. A run already finished in ``--out`` is not repeated. The tokenizer is a
byte-level BPE trained on the data's training split (nothing is downloaded).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from gpa_titan.analysis.logs import VAL_LOSS, read_tensorboard
from gpa_titan.analysis.report import write_report
from gpa_titan.analysis.speedup import Setting, best_by_final_loss
from gpa_titan.data.demo import train_bpe_tokenizer
from gpa_titan.data.documents import find_shards
from gpa_titan.optim.table4 import PAPER_MU
from gpa_titan.paths import REPO_ROOT
from gpa_titan.titan.optimizer_registry import OPTIMIZER_NAMES, OPTIMIZERS, get_optimizer_spec
from gpa_titan.titan.run_args import short_run_args


def csv(cast):
    return lambda text: [cast(v) for v in text.split(",") if v]


def run_name(optimizer: str, h: int | None, lr: float, seed: int) -> str:
    return f"{optimizer}" + (f"_H{h}" if h else "") + f"_lr{lr:g}_seed{seed}"


def train_args(a, tokenizer: str, dump: str, optimizer: str, h: int | None, lr: float, seed: int) -> list[str]:
    args = short_run_args(
        dump, data=a.data, tokenizer=tokenizer, steps=a.steps, seq_len=a.seq_len, batch=a.batch,
        val_batches=a.val_batches, val_every=a.val_every, log_freq=a.val_every, dataset="c4", flavor=a.flavor,
        vocab_size=a.vocab_size, seed=seed,
    )
    args += ["--optimizer.name", optimizer, "--optimizer.lr", f"{lr:g}",
             "--optimizer.beta1", "0.9", "--optimizer.beta2", "0.95", "--optimizer.weight_decay", "0.1"]
    spec = OPTIMIZERS[optimizer]
    if spec.takes_inner_steps:
        fields = spec.inner_steps_fields(h, a.mu)
        chosen = dict(mu_y=a.mu_y, outer_lr=a.outer_lr, outer_momentum=a.mu)
        fields |= {key: value for key, value in chosen.items() if key in spec.fields}
        for key, value in fields.items():
            args += [f"--optimizer.{key}", f"{value:.6g}" if isinstance(value, float) else str(value)]
    return args


def finished(dump: str, steps: int) -> bool:
    curve = read_tensorboard(dump, VAL_LOSS) if os.path.isdir(dump) else {}
    return steps in curve


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="folder with c4-train.*.json.gz and c4-validation.*.json.gz")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--optimizers", type=csv(str), default=list(OPTIMIZER_NAMES))
    ap.add_argument("--lrs", type=csv(float), default=[1e-3, 3e-3], help="the shared learning-rate grid")
    ap.add_argument("--inner-steps", type=csv(int), default=[8], help="H values (GPA: mu_x = mu^(1/H))")
    ap.add_argument("--mu", type=float, default=PAPER_MU, help="DiLoCo outer momentum; GPA's mu for Table 4")
    ap.add_argument("--mu-y", type=float, default=0.9, help="GPA mu_y")
    ap.add_argument("--outer-lr", type=float, default=0.75, help="DiLoCo outer learning rate")
    ap.add_argument("--seeds", type=csv(int), default=[0, 1])
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--batch", type=int, default=16, help="sequences per step")
    ap.add_argument("--val-every", type=int, default=25)
    ap.add_argument("--val-batches", type=int, default=8)
    ap.add_argument("--flavor", default="small", help="model flavor (gpa_titan.titan.models.FLAVORS)")
    ap.add_argument("--vocab-size", type=int, default=4096, help="BPE vocabulary trained on the data")
    ap.add_argument("--tokenizer-docs", type=int, default=20000, help="training documents used for the BPE")
    a = ap.parse_args(argv)
    for name in a.optimizers:
        try:
            get_optimizer_spec(name)
        except KeyError as e:
            raise SystemExit(f"--optimizers: {e.args[0]}") from None

    a.data = os.path.abspath(a.data)
    find_shards(a.data, "train", key="--data")
    find_shards(a.data, "validation", key="--data")
    os.makedirs(a.out, exist_ok=True)
    tokenizer = os.path.join(a.out, f"tokenizer_{a.vocab_size}")
    if not os.path.exists(os.path.join(tokenizer, "tokenizer.json")):
        os.makedirs(tokenizer, exist_ok=True)
        print(f"training a {a.vocab_size}-token BPE on {a.data} ...", flush=True)
        train_bpe_tokenizer(find_shards(a.data, "train")[0], tokenizer, a.vocab_size, a.tokenizer_docs)

    env = {**os.environ, "PYTHONUNBUFFERED": "1", "WANDB_MODE": "offline"}
    if a.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    plan = []
    for optimizer in a.optimizers:
        for h in (a.inner_steps if OPTIMIZERS[optimizer].takes_inner_steps else [None]):
            for lr in a.lrs:
                for seed in a.seeds:
                    plan.append((optimizer, h, lr, seed))
    settings: dict[tuple, Setting] = {}
    for i, (optimizer, h, lr, seed) in enumerate(plan):
        dump = os.path.join(a.out, "runs", run_name(optimizer, h, lr, seed))
        if not finished(dump, a.steps):
            start = time.time()
            print(f"[{i + 1}/{len(plan)}] {run_name(optimizer, h, lr, seed)}", flush=True)
            cmd = [sys.executable, "-m", "gpa_titan.train", *train_args(a, tokenizer, dump, optimizer, h, lr, seed)]
            proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                print(proc.stdout[-3000:], proc.stderr[-5000:], file=sys.stderr)
                raise SystemExit(f"run {dump} failed")
            print(f"    done in {time.time() - start:.0f}s", flush=True)
        setting = settings.setdefault((optimizer, h, lr), Setting(optimizer, h, lr))
        setting.curves.append(read_tensorboard(dump, VAL_LOSS))

    best = best_by_final_loss(list(settings.values()))
    info = (f"{a.flavor} Llama, {a.steps} steps x {a.batch} x {a.seq_len} tokens = "
            f"{a.steps * a.batch * a.seq_len / 1e6:.2f}M tokens, seeds {a.seeds}, lr grid {a.lrs}, "
            f"data {os.path.basename(a.data.rstrip('/'))}, {a.device}")
    all_settings = [dict(optimizer=s.optimizer, inner_steps=s.inner_steps, lr=s.lr, finals=s.finals)
                    for s in settings.values()]
    baseline = "AdamW" if "AdamW" in a.optimizers else None  # without it: no speedup columns
    table = write_report(a.out, best, info, baseline=baseline, extra={"setup": vars(a), "all_settings": all_settings})
    print(info)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
