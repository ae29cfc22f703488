"""A short compiled bf16 training run per optimizer on one GPU: tokens/s and peak memory next to AdamW's.

    python scripts/gpu_train_check.py --out runs/gpu_train_check        # 160M flavor, demo corpus
    python scripts/gpu_train_check.py --flavor 1B --batch 4 --steps 40

Each optimizer trains the same model on the generated demo corpus (no download) through
``python -m gpa_titan.train`` with ``torch.compile`` and bf16 compute. Reported: the median
tokens/s over the logged steps after the first ``--warmup`` (compilation), the peak reserved
memory, and the extra memory over AdamW next to the expected extra: one fp32 copy of the
parameters for GPA-AdamW and Schedule-Free (z), two for DiLoCo-AdamW (outer weights and
momentum); Muon keeps one buffer instead of two on its matrices (one fp32 copy of them less),
GPA-Muon that plus z.
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

# Optimizer state beyond AdamW's, in fp32 copies: of all parameters, and of the Muon matrices
# (Muon keeps one momentum buffer where AdamW keeps two moments).
EXTRA_FP32_COPIES = {"AdamW": (0, 0), "GPA-AdamW": (1, 0), "DiLoCo-AdamW": (2, 0), "ScheduleFree-AdamW": (1, 0),
                     "Muon": (0, -1), "GPA-Muon": (1, -1)}


def muon_matrix_elements(flavor: str) -> int:
    """Elements of the flavor's parameters that Muon orthogonalises (the others take AdamW)."""
    import torch
    from torchtitan.models.llama3 import Transformer

    from gpa_titan.optim.muon import uses_muon
    from gpa_titan.titan.models import flavor_args

    with torch.device("meta"):
        model = Transformer(flavor_args(flavor))
    return sum(p.numel() for name, p in model.named_parameters() if uses_muon(name, p))
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
    unknown = [n for n in a.optimizers.split(",") if n not in EXTRA_FP32_COPIES]
    if unknown:
        raise SystemExit(f"--optimizers: {unknown} not known; choose from {','.join(EXTRA_FP32_COPIES)}")
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
    matrices = muon_matrix_elements(a.flavor)
    _, base_tps, base_mem = next(r for r in rows if r[0] == "AdamW")
    print(f"# {a.flavor} ({params / 1e6:.1f}M parameters), {a.batch} x {a.seq_len} tokens per step, "
          f"{'compiled' if a.compile else 'eager'}, bf16, "
          f"{a.steps} steps (tokens/s: median after step {a.warmup})")
    print("| optimizer | tokens/s | vs AdamW | peak memory (GiB) | over AdamW (GiB) | expected extra (GiB) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, tps_value, mem in rows:
        copies, matrix_copies = EXTRA_FP32_COPIES[name]
        expected = (copies * params + matrix_copies * matrices) * 4 / 2**30
        print(f"| {name} | {tps_value:,.0f} | {tps_value / base_tps:.3f}x | {mem:.2f} | {mem - base_mem:+.2f} | "
              f"{expected:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
