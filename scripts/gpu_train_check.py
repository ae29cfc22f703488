"""A short compiled bf16 training run per optimizer on one GPU: tokens/s and peak memory next to AdamW's.

    python scripts/gpu_train_check.py --out runs/gpu_train_check        # 160M flavor, demo corpus
    python scripts/gpu_train_check.py --flavor 1B --batch 4 --steps 40

Each optimizer trains the same model on the generated demo corpus (no download) through
``python -m gpa_titan.train`` with ``torch.compile`` and bf16 compute. Reported: the median
tokens/s over the logged steps after the first ``--warmup`` (compilation), the peak reserved
memory, and the extra memory over AdamW next to the expected extra: one fp32 copy of the
parameters for GPA-AdamW (z), two for DiLoCo-AdamW (outer weights and momentum).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

from gpa_titan.analysis.logs import read_tensorboard
from gpa_titan.data.demo import build_demo_assets
from gpa_titan.optim.registry import OPTIMIZER_NAMES
from gpa_titan.paths import REPO_ROOT
from gpa_titan.study.run_args import short_run_args
from gpa_titan.titan.models import parameter_counts

EXTRA_FP32_COPIES = {"AdamW": 0, "GPA-AdamW": 1, "DiLoCo-AdamW": 2, "ScheduleFree-AdamW": 1}
TPS, MEMORY = "throughput(tps)", "memory/max_reserved(GiB)"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/gpu_train_check", help="folder for the runs and the demo corpus")
    ap.add_argument("--flavor", default="160M")
    ap.add_argument("--batch", type=int, default=8, help="sequences per step")
    ap.add_argument("--seq-len", type=int, default=2048)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=20, help="logged steps left out of the tokens/s median")
    ap.add_argument("--optimizers", default=",".join(OPTIMIZER_NAMES))
    ap.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True, help="torch.compile the model")
    ap.add_argument("--documents", type=int, default=3000,
                    help="size of the generated demo corpus (built in about a second; training loops over it)")
    a = ap.parse_args(argv)
    if "AdamW" not in a.optimizers.split(","):
        raise SystemExit("--optimizers must include AdamW, the baseline of the comparison")

    assets = build_demo_assets(os.path.join(a.out, "demo_assets"), documents=a.documents)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "WANDB_MODE": "offline"}
    rows = []
    for name in a.optimizers.split(","):
        dump = os.path.join(a.out, name)
        args = short_run_args(dump, data=assets, tokenizer=assets, steps=a.steps, seq_len=a.seq_len, batch=a.batch,
                              val_batches=1, val_every=10**6, log_freq=5, dataset="demo", flavor=a.flavor)
        args += ["--optimizer.name", name, "--optimizer.inner_steps", "8", "--training.mixed_precision_param",
                 "bfloat16", "--validation.no-enable", "--compile.enable" if a.compile else "--compile.no-enable"]
        proc = subprocess.run([sys.executable, "-m", "gpa_titan.train", *args], cwd=REPO_ROOT, env=env,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            print(proc.stdout[-3000:], proc.stderr[-5000:], file=sys.stderr)
            raise SystemExit(f"the {name} run failed (see above)")
        tps = read_tensorboard(dump, TPS)
        memory = read_tensorboard(dump, MEMORY)
        steady = [v for s, v in sorted(tps.items()) if s > a.warmup]
        rows.append((name, statistics.median(steady), max(memory.values())))
    params = parameter_counts(a.flavor)["total"]
    _, base_tps, base_mem = next(r for r in rows if r[0] == "AdamW")
    print(f"# {a.flavor} ({params / 1e6:.1f}M parameters), {a.batch} x {a.seq_len} tokens per step, "
          f"{'compiled' if a.compile else 'eager'}, bf16, "
          f"{a.steps} steps (tokens/s: median after step {a.warmup})")
    print("| optimizer | tokens/s | vs AdamW | peak memory (GiB) | over AdamW (GiB) | expected extra (GiB) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, tps_value, mem in rows:
        expected = EXTRA_FP32_COPIES.get(name, 0) * params * 4 / 2**30
        print(f"| {name} | {tps_value:,.0f} | {tps_value / base_tps:.3f}x | {mem:.2f} | {mem - base_mem:+.2f} | "
              f"{expected:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
