"""The convergence benchmark (shared grid, tuning study, --confirm) and plot_runs end to end at a toy size."""

import json
import subprocess
import sys

from gpa_titan.analysis.logs import VAL_LOSS, read_tensorboard, read_wandb_offline
from gpa_titan.study.launcher import run_env
from helpers import REPO, run, run_trainer, tiny_args


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
    plot = subprocess.run([sys.executable, "scripts/plot_runs.py", *runs, "--out", str(tmp_path / "fig"), "--figures"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert plot.returncode == 0, plot.stderr
    assert plot.stdout.strip().splitlines()[-4:] == last[-4:], "same table from the logs alone"
    assert (tmp_path / "fig" / "validation_loss.png").exists()
    assert "Paper figures in" in plot.stdout
    for name in ("table2", "figure1b", "figure3", "figure9"):  # the paper's figures from the same runs
        assert (tmp_path / "fig" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    table2 = (tmp_path / "fig" / "table2.md").read_text()
    assert "| H = 4 |" in table2 and "| paper-equivalent H (H x 12,208 / 8) | 6,104 |" in table2


def test_wandb_offline_logs_are_readable(tmp_path, demo_assets):
    dump = str(tmp_path / "run")
    run_trainer(1, tiny_args(dump, demo_assets, 10, "--metrics.enable_wandb", "--checkpoint.no-enable"))
    from_tb = read_tensorboard(dump, VAL_LOSS)
    from_wandb = read_wandb_offline(dump, VAL_LOSS)
    assert sorted(from_wandb) == sorted(from_tb) == [1, 10]
    assert all(abs(from_wandb[s] - from_tb[s]) < 1e-5 for s in from_tb)


TOY_SETUP = {"flavor": "debug", "steps": 8, "seq_len": 32, "batch": 4, "vocab_size": 512, "tokenizer_docs": 500,
             "val_every": 4, "val_batches": 2}
TOY_SPEC = {
    "name": "toy", "setup": TOY_SETUP, "tuning": {"fraction": 0.05, "seed": 0}, "final": {"seeds": [0]},
    "methods": {
        "GPA-AdamW": {"start": {"lr": 0.003, "beta1": 0.9, "beta2": 0.95, "mu_y": 0.5, "H": 2},
                      "phases": [{"name": "lr", "grid": {"lr": [0.003]}},
                                 {"name": "mu_y x window", "grid": {"mu_y": [0.5, 0.9], "H": [2]}}]},
        "AdamW": {"start": {"lr": 0.003, "beta1": 0.9, "beta2": 0.95},
                  "phases": [{"name": "lr", "grid": {"lr": [0.001, "x1"]}}]},
        "DiLoCo-AdamW": {"start": {"lr": 0.003, "beta1": 0.9, "beta2": 0.95, "H": 2, "outer_lr": 0.75,
                                   "outer_momentum": 0.9}, "phases": [{"name": "H", "grid": {"H": [2]}}]},
        "ScheduleFree-AdamW": {"start": {"lr": 0.003, "beta1": 0.9, "beta2": 0.95}, "phases": []},
    },
}


def bench(*args):
    return run([sys.executable, "scripts/bench_convergence.py", *args], timeout=900).stdout


def table_rows(stdout):
    return [line for line in stdout.strip().splitlines() if line.startswith("| ")]


def test_study_runs_phases_in_parallel_resumes_and_confirms(tmp_path, demo_assets):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(TOY_SPEC))
    out, report = tmp_path / "study", tmp_path / "report"
    common = ["--data", demo_assets, "--jobs", "2"]
    first = bench("--study", str(spec), "--out", str(out), "--report", str(report), *common)
    rows = table_rows(first)
    assert rows[0].startswith("| optimizer | H (paper-equivalent; averaging window) | settings | final val loss")
    assert [r.split(" | ")[0] for r in rows[1:]] == ["| AdamW", "| DiLoCo-AdamW", "| GPA-AdamW", "| ScheduleFree-AdamW"]
    assert first.strip().splitlines()[-1] == rows[-1], "the table is printed last"
    assert first.count("] tuning: ") == 5 and first.count("] final: ") == 4  # GPA 2, AdamW 2, DiLoCo 1, SF none
    assert "GPA-AdamW phase 'mu_y x window': chose" in first

    # the tuning split: carved from the training documents, used by the tuning runs only
    manifest = json.loads((out / "tuning_data" / "tuning_split.json").read_text())
    assert manifest["tuning_documents"] == round(0.05 * manifest["documents"])
    tuning_run = json.loads(next((out / "runs" / "tuning").glob("AdamW_*/bench_run.json")).read_text())
    final_run = json.loads(next((out / "runs" / "final").glob("AdamW_*/bench_run.json")).read_text())
    data_of = {r["args"][r["args"].index("--validation.dataset_path") + 1] for r in (tuning_run, final_run)}
    assert data_of == {str(out / "tuning_data"), demo_assets}

    tuned = json.loads((report / "tuned.json").read_text())
    assert set(tuned["methods"]) == set(TOY_SPEC["methods"]) and tuned["setup"]["steps"] == 8
    assert tuned["methods"]["GPA-AdamW"]["optimizer"]["mu_x"] == round(0.9 ** 0.5, 7)
    state = json.loads((out / "study_state.json").read_text())
    assert [p["phase"] for p in state["phases"]["GPA-AdamW"]] == ["lr", "mu_y x window"]
    for name in ("study.md", "confirm.md", "figure3.png", "tuning_table2.png", "tuning_figure1b.png",
                 "tuning_figure9.png", "tuning_table2.md"):
        assert (report / name).exists(), name
    assert "Phase *mu_y x window*" in (report / "study.md").read_text()

    # every run on one CPU thread
    threads = run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"], env=run_env("cpu"))
    assert threads.stdout.strip() == "1"
    records = [json.loads(p.read_text()) for p in out.glob("runs/*/*/bench_run.json")]
    assert len(records) == 9 and all(r["cpu_s"] <= 1.5 * r["wall_s"] for r in records)

    # resume: nothing runs again, the same table
    again = bench("--study", str(spec), "--out", str(out), "--report", str(report), *common)
    assert "[run" not in again and table_rows(again) == rows

    # a study of some optimizers adds them to the tuned file and keeps the others' entries
    tuned_before = json.loads((report / "tuned.json").read_text())
    some = bench("--study", str(spec), "--optimizers", "AdamW", "--out", str(out), "--report", str(tmp_path / "some"),
                 "--tuned", str(report / "tuned.json"), *common)
    assert "[run" not in some and f"{report / 'tuned.json'}: kept the tuned settings of GPA-AdamW, DiLoCo-AdamW, " \
        "ScheduleFree-AdamW (not rerun), added AdamW" in some
    assert json.loads((report / "tuned.json").read_text())["methods"] == tuned_before["methods"]
    assert "--study " in (tmp_path / "some" / "study.md").read_text() and " --optimizers AdamW " in (
        tmp_path / "some" / "study.md").read_text()

    # --confirm runs exactly the tuned settings: into the study's folder nothing runs and the table is the same,
    # with another seed into a new folder the four settings run again
    same = bench("--confirm", str(report / "tuned.json"), "--out", str(out), "--seeds", "0", *common)
    assert "[run" not in same and table_rows(same) == rows
    other = bench("--confirm", str(report / "tuned.json"), "--out", str(tmp_path / "confirm"), "--seeds", "1",
                  *common)
    assert other.count("] final: ") == 4 and len(table_rows(other)) == 5
    assert all("_seed1" in p.name for p in (tmp_path / "confirm" / "runs" / "final").iterdir())
    assert (tmp_path / "confirm" / "confirm.md").exists()
