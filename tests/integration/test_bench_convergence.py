"""The convergence benchmark and plot_runs end to end at a toy size."""

import subprocess
import sys

from gpa_titan.analysis.logs import VAL_LOSS, read_tensorboard, read_wandb_offline
from helpers import REPO, run_trainer, tiny_args


def test_bench_convergence_and_plot_runs_at_toy_size(tmp_path, demo_assets):
    out = tmp_path / "bench"
    cmd = [sys.executable, "scripts/bench_convergence.py", "--data", demo_assets, "--out", str(out),
           "--optimizers", "AdamW,GPA-AdamW", "--seeds", "0", "--lrs", "3e-3", "--inner-steps", "4",
           "--steps", "8", "--val-every", "4", "--val-batches", "2", "--seq-len", "32", "--batch", "4",
           "--flavor", "debug", "--vocab-size", "512", "--tokenizer-docs", "500"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()
    assert last[-4].startswith("| optimizer | H | lr | final val loss")
    assert last[-2].startswith("| AdamW | — | 0.003 |") and last[-1].startswith("| GPA-AdamW | 4 | 0.003 |")
    assert (out / "results.md").read_text().count("\n| ") == 3
    png = (out / "validation_loss.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000

    runs = sorted(str(p) for p in (out / "runs").iterdir())
    plot = subprocess.run([sys.executable, "scripts/plot_runs.py", *runs, "--out", str(tmp_path / "fig")],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert plot.returncode == 0, plot.stderr
    assert plot.stdout.strip().splitlines()[-4:] == last[-4:], "same table from the logs alone"
    assert (tmp_path / "fig" / "validation_loss.png").exists()


def test_wandb_offline_logs_are_readable(tmp_path, demo_assets):
    dump = str(tmp_path / "run")
    run_trainer(1, tiny_args(dump, demo_assets, 10, "--metrics.enable_wandb", "--checkpoint.no-enable"))
    from_tb = read_tensorboard(dump, VAL_LOSS)
    from_wandb = read_wandb_offline(dump, VAL_LOSS)
    assert sorted(from_wandb) == sorted(from_tb) == [1, 10]
    assert all(abs(from_wandb[s] - from_tb[s]) < 1e-5 for s in from_tb)
