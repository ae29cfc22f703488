"""The GPU check's scripts run on CPU at a toy size (so they cannot rot where CI has no GPU)."""

import subprocess
import sys

import torch

from helpers import REPO, run


def test_bench_optimizer_prints_every_optimizer_with_bandwidth():
    out = run([sys.executable, "scripts/bench_optimizer.py", "--device", "cpu", "--dim", "64", "--layers", "1",
               "--vocab", "128", "--repeats", "2", "--one-at-a-time"]).stdout.strip().splitlines()
    assert out[1].startswith("| optimizer | median step (ms) | vs fused AdamW | state bytes/param | achieved bandwidth")
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ") for line in out[3:]}
    assert set(rows) == {"AdamW foreach", "AdamW fused", "GPA-AdamW fused", "GPA-AdamW foreach",
                         "DiLoCo-AdamW fused (H=8)"}
    assert rows["AdamW fused"][2] == "1.00x" and rows["GPA-AdamW fused"][3] == "12.0"
    assert rows["DiLoCo-AdamW fused (H=8)"][3] == "16.0"


def test_gpu_train_check_reports_tokens_per_second_and_memory(tmp_path):
    out = run([sys.executable, "scripts/gpu_train_check.py", "--out", str(tmp_path), "--flavor", "debug",
               "--steps", "6", "--seq-len", "32", "--batch", "2", "--warmup", "0", "--optimizers", "AdamW,GPA-AdamW",
               "--no-compile"], timeout=600).stdout.strip().splitlines()
    assert out[-3].startswith("| AdamW |") is False and out[-2].startswith("| AdamW | ")
    assert out[-1].startswith("| GPA-AdamW | ") and float(out[-1].split(" | ")[1].replace(",", "")) > 0


def test_gpu_check_refuses_without_a_gpu():
    if torch.cuda.is_available():
        return
    proc = subprocess.run(["bash", "scripts/gpu_check.sh"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "no CUDA device visible" in proc.stderr
