"""The GPU check's scripts run on CPU at a toy size (so they cannot rot where CI has no GPU)."""

import os
import subprocess
import sys

import torch

from helpers import REPO, run


def test_bench_optimizer_prints_every_optimizer_with_bandwidth():
    out = run([sys.executable, "scripts/bench_optimizer.py", "--device", "cpu", "--dim", "64", "--layers", "1",
               "--vocab", "128", "--repeats", "2", "--one-at-a-time"]).stdout.strip().splitlines()
    assert out[1].startswith("| optimizer | median step (ms) | vs fused AdamW | state bytes/param | achieved bandwidth")
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ") for line in out[3:] if line.startswith("| ")}
    assert set(rows) == {"AdamW foreach", "AdamW fused", "GPA-AdamW fused", "GPA-AdamW foreach",
                         "DiLoCo-AdamW fused (H=8)", "Muon", "GPA-Muon"}
    assert rows["AdamW fused"][2] == "1.00x" and rows["GPA-AdamW fused"][3] == "12.0"
    assert rows["DiLoCo-AdamW fused (H=8)"][3] == "16.0"
    # GPA-Muon keeps Muon's state plus one fp32 copy (z): 4 more bytes per parameter
    assert float(rows["GPA-Muon"][3]) == float(rows["Muon"][3]) + 4.0 and "x Muon)" in rows["GPA-Muon"][2]
    communication = [line for line in out if line.startswith("Muon on FSDP2 over")]
    assert len(communication) == 2 and all("MB sent by the busiest rank per step" in line for line in communication)


def test_gpu_check_rehearses_every_stage_on_cpu(tmp_path):
    """The whole of scripts/gpu_check.sh (setup, machine, build, tests, optimizer, training) at
    toy sizes: the script a device call runs has run here, stage times and all."""
    out = tmp_path / "out"
    proc = run(["bash", "scripts/gpu_check.sh", "--rehearse-on-cpu", "--out", str(out)],
               env={"GPU_RUNS": str(tmp_path / "runs")}, timeout=600)
    assert "gpu_check.sh: all checks passed" in proc.stdout
    assert sorted(os.listdir(out)) == ["bench_optimizer.md", "build_check.md", "machine.txt", "pytest_gpu.txt",
                                       "stages.md", "train_check.md"]
    stages = (out / "stages.md").read_text().splitlines()
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ") for line in stages[3:]}
    assert list(rows) == ["setup", "machine", "build", "tests", "optimizer", "training", "all"]
    assert all(row[3].startswith("ok") for row in rows.values()), stages
    limits = [int(row[2]) for name, row in rows.items() if name != "all"]
    assert sum(limits) == int(rows["all"][2]) <= 540, "the stage limits must leave a 10-minute device call time"
    assert "4 of 4 variants pass" in (out / "build_check.md").read_text()
    train = (out / "train_check.md").read_text().strip().splitlines()
    assert train[-2].startswith("| AdamW | ") and train[-1].startswith("| GPA-AdamW | ")
    assert float(train[-1].split(" | ")[1].replace(",", "")) > 0


def test_gpu_check_refuses_unknown_arguments():
    proc = subprocess.run(["bash", "scripts/gpu_check.sh", "--fast"], cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and "unknown argument '--fast'" in proc.stderr and "--quick" in proc.stderr


def test_gpu_check_refuses_without_a_gpu():
    if torch.cuda.is_available():
        return
    proc = subprocess.run(["bash", "scripts/gpu_check.sh"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "no CUDA device visible" in proc.stderr
