"""Every command-line script refuses a bad argument with one line, ``<prog>: error: <message>``
naming the flag, the value and the fix, and exit code 2, before it writes or submits anything
(issue 15). The scripts run in this process (``main(argv)``); slurm/train.sbatch's own checks are
in tests/integration/test_slurm_and_sweep.py."""

import importlib.util
import json
import os
import subprocess

import pytest

from gpa_titan.study import cli as study_cli
from helpers import REPO

GPA = os.path.join(REPO, "configs", "llama_160m_gpa.toml")
DILOCO = os.path.join(REPO, "configs", "llama_160m_diloco.toml")
ADAMW = os.path.join(REPO, "configs", "llama_160m_adamw.toml")
TUNED = os.path.join(REPO, "docs", "results", "tuned.json")


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_script", os.path.join(REPO, "scripts", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def scripts():
    """Each script's ``main``: scripts/bench_convergence.py's is the study package's command line."""
    return {"bench_convergence": study_cli, **{name: load(name) for name in ("sweep", "table4", "memory_plan")}}


def refused(script, argv: list[str], capsys) -> str:
    """Run ``script.main(argv)``; it must exit 2 with one error line (after argparse's usage); return that line."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        script.main(argv)
    out, err = capsys.readouterr()
    assert exit_info.value.code == 2, (exit_info.value.code, out, err)
    assert "Traceback" not in err and out == "", (out, err)
    lines = [line for line in err.splitlines() if line and not line.startswith(("usage:", " "))]
    assert len(lines) == 1 and ": error: " in lines[0], err
    return lines[0]


# ------------------------------------------------------------------------------- scripts/sweep.py
SWEEP_CASES = {  # id: (config, arguments, what the message must say)
    "mu_y above 1": (GPA, ["--mu-y", "0.8,1.5"], ["--mu-y 1.5:", "mu_y = 1.5 is out of range for GPA-AdamW",
                                                  "must be a number in [0, 1]", "give --mu-y values in that range"]),
    "mu_y 0": (GPA, ["--mu-y", "0"], ["--mu-y 0:", "mu_y=0 is not supported"]),
    "mu_x 1": (GPA, ["--mu-x", "1"], ["--mu-x 1:", "mu_x = 1.0", "[0, 1)"]),
    "lr 0": (GPA, ["--lr", "0,1e-3"], ["--lr 0:", "a positive finite number", "give --lr values"]),
    "lr negative": (GPA, ["--lr=-1e-3"], ["--lr -0.001:", "a positive finite number"]),
    "beta2 1": (GPA, ["--betas", "0.9,1.0"], ["--betas 0.9,1:", "beta2 = 1.0", "[0, 1)"]),
    "outer lr 0": (DILOCO, ["--outer-lr", "0"], ["--outer-lr 0:", "outer_lr = 0.0", "(0, inf)"]),
    "H beyond the run": (DILOCO, ["--inner-steps", "8,20000"], ["--inner-steps 20000:", "[training] steps = 12208"]),
    "H 0": (GPA, ["--inner-steps", "0"], ["--inner-steps 0:", "an integer >= 1"]),
    "mu 1.5": (GPA, ["--inner-steps", "8", "--mu", "1.5"], ["--mu 1.5:", "(0, 1)", "e.g. --mu 0.9"]),
    "lr twice": (GPA, ["--lr", "1e-3,0.001"], ["argument --lr:", "'1e-3' and '0.001' are the same value twice",
                                               "share one dump folder", "list each value once"]),
    "mu_y twice": (GPA, ["--mu-y", "0.9,0.9"], ["argument --mu-y:", "same value twice"]),
    "betas twice": (GPA, ["--betas", "0.9,0.95;0.9,0.950"], ["argument --betas:", "same value twice"]),
    "H twice": (DILOCO, ["--inner-steps", "8,8"], ["argument --inner-steps:", "same value twice"]),
    "H giving one mu_x": (GPA, ["--inner-steps", "1000,1001"], ["--inner-steps 1000 and 1001 both give "
                                                                "--optimizer.mu_x 0.999895", "keep one of them"]),
    "empty list": (GPA, ["--lr", ""], ["argument --lr:", "'' is an empty list", "e.g. --lr 1e-3,3e-3"]),
    "only a comma": (GPA, ["--lr", ","], ["argument --lr:", "',' is an empty list"]),
    "empty item": (GPA, ["--mu-y", "0.8,,0.9"], ["argument --mu-y:", "empty item", "e.g. --mu-y 0.8,0.9"]),
    "trailing comma": (GPA, ["--lr", "1e-3,"], ["argument --lr:", "empty item"]),
    "empty betas": (GPA, ["--betas", ";"], ["argument --betas:", "empty list"]),
    "not a number": (GPA, ["--lr", "fast"], ["argument --lr:", "'fast' is not a finite number", "e.g. --lr"]),
    "nan": (GPA, ["--mu-y", "nan"], ["argument --mu-y:", "'nan' is not a finite number"]),
    "not a pair": (GPA, ["--betas", "0.9"], ["argument --betas:", "'0.9' is not a pair beta1,beta2"]),
    "H not whole": (DILOCO, ["--inner-steps", "8.5"], ["argument --inner-steps:", "'8.5' is not a whole number"]),
    "H whose mu_x rounds to 1": (GPA, ["--inner-steps", "8,300000"], ["--inner-steps 300000:", "mu_x = 1.0",
                                                                    "[0, 1)"]),
    "mu not a number": (GPA, ["--inner-steps", "8", "--mu", "x"], ["argument --mu:", "'x' is not a finite number",
                                                                   "e.g. --mu 0.9"]),
    "nodes not a number": (GPA, ["--nodes", "two"], ["argument --nodes:", "'two' is not a whole number"]),
    "no nodes": (GPA, ["--nodes", "0"], ["--nodes 0:", "give --nodes 1 or more"]),
    "negative parallel": (GPA, ["--parallel=-1"], ["--parallel -1:", "or 0 for no limit"]),
    "name with a slash": (GPA, ["--name", "a/b"], ["--name 'a/b'", "no spaces or '/'"]),
    "empty name": (GPA, ["--name", ""], ["--name ''", "e.g. --name mu_sweep"]),
    "another optimizer's key": (GPA, ["--outer-lr", "0.5"], ["--outer-lr sets [optimizer] outer_lr, which only "
                                                            "DiLoCo-AdamW uses", "Remove --outer-lr"]),
    "mu_y on DiLoCo": (DILOCO, ["--mu-y", "0.5"], ["--mu-y sets [optimizer] mu_y, which only GPA-AdamW or GPA-Muon "
                                                   "uses"]),
    "mu without H": (GPA, ["--mu", "0.8"], ["--mu 0.8 is used only to map --inner-steps", "remove --mu"]),
    "mu on DiLoCo": (DILOCO, ["--inner-steps", "8", "--mu", "0.8"], ["--mu 0.8 is used only", "outer_momentum"]),
    "H on AdamW": (ADAMW, ["--inner-steps", "8"], ["--inner-steps needs a config of GPA-AdamW or DiLoCo-AdamW",
                                                   "remove --inner-steps"]),
    "mu_x and H": (GPA, ["--mu-x", "0.99", "--inner-steps", "8"], ["--mu-x and --inner-steps", "give one of them"]),
    "missing config": ("configs/nope.toml", [], ["--config configs/nope.toml: no such file"]),
}


@pytest.mark.parametrize("case", list(SWEEP_CASES))
def test_sweep_refuses_bad_arguments_before_writing(case, scripts, tmp_path, capsys):
    config, extra, needles = SWEEP_CASES[case]
    argv = ["--config", config, "--name", "s", "--out", str(tmp_path / "sweeps"), *extra]
    for dry in ([], ["--dry-run"]):
        line = refused(scripts["sweep"], [*argv, *dry], capsys)
        for needle in needles:
            assert needle in line, (needle, line)
        assert not (tmp_path / "sweeps").exists(), "nothing is written"


def test_sweep_refuses_a_config_value_out_of_range_and_names_the_config(scripts, tmp_path, capsys):
    config = tmp_path / "bad.toml"
    config.write_text(open(GPA).read().replace("mu_y = 0.9 ", "mu_y = 2.0 "))
    argv = ["--config", str(config), "--name", "s", "--out", str(tmp_path / "sweeps"), "--lr", "1e-3"]
    line = refused(scripts["sweep"], argv, capsys)
    assert f"--config {config}: [optimizer] mu_y = 2.0 is out of range for GPA-AdamW" in line
    assert "fix it in the config or sweep it" in line
    assert scripts["sweep"].main([*argv, "--mu-y", "0.9", "--dry-run"]) == 0, "swept over, it is fine"


def test_sweep_error_leaves_a_submitted_sweep_untouched(scripts, tmp_path, capsys):
    runs = tmp_path / "sweeps" / "s" / "runs.tsv"
    runs.parent.mkdir(parents=True)
    runs.write_text("name\toverrides\nlr0.001\t--optimizer.lr 0.001\n")
    refused(scripts["sweep"], ["--config", GPA, "--name", "s", "--out", str(tmp_path / "sweeps"), "--force",
                               "--mu-y", "1.5"], capsys)
    assert runs.read_text() == "name\toverrides\nlr0.001\t--optimizer.lr 0.001\n"
    assert sorted(os.listdir(runs.parent)) == ["runs.tsv"]


def test_sweep_values_that_print_alike_get_distinct_exact_runs(scripts, tmp_path, capsys):
    out = tmp_path / "sweeps"
    argv = ["--config", GPA, "--name", "s", "--out", str(out), "--lr", "1e-3,0.0010000001,3e-3", "--dry-run"]
    assert scripts["sweep"].main(argv) == 0
    rows = [line.split("\t") for line in (out / "s" / "runs.tsv").read_text().splitlines()[1:]]
    assert rows == [["lr0.001", "--optimizer.lr 0.001"], ["lr0.0010000001", "--optimizer.lr 0.0010000001"],
                    ["lr0.003", "--optimizer.lr 0.003"]]


def test_a_failed_sbatch_leaves_the_sweep_replaceable(scripts, tmp_path, capsys, monkeypatch):
    sweep = scripts["sweep"]

    def no_sbatch(cmd, check):
        raise FileNotFoundError(2, "No such file or directory", "sbatch")

    monkeypatch.setattr(sweep.subprocess, "run", no_sbatch)
    argv = ["--config", GPA, "--name", "s", "--out", str(tmp_path / "sweeps"), "--lr", "1e-3"]
    assert sweep.main(argv) == 1
    assert "error: sbatch failed" in capsys.readouterr().err
    assert (tmp_path / "sweeps" / "s" / "DRY_RUN").exists(), "nothing was submitted"
    monkeypatch.setattr(sweep.subprocess, "run", lambda cmd, check: subprocess.CompletedProcess(cmd, 0))
    assert sweep.main([*argv[:-1], "3e-3"]) == 0, "so the next run may replace its runs.tsv"
    assert not (tmp_path / "sweeps" / "s" / "DRY_RUN").exists()
    assert "lr0.003" in (tmp_path / "sweeps" / "s" / "runs.tsv").read_text()


# --------------------------------------------------------------------- scripts/bench_convergence.py
BENCH_CASES = {  # id: (arguments, what the message must say)
    "empty seeds": (["--seeds", ""], ["argument --seeds:", "'' is an empty list", "e.g. --seeds 0,1,2"]),
    "seeds comma": (["--seeds", ","], ["argument --seeds:", "empty list"]),
    "seed twice": (["--seeds", "0,1,0"], ["argument --seeds:", "'0' is listed twice", "list each value once"]),
    "negative seed": (["--seeds=-1"], ["argument --seeds:", "'-1' is negative", "e.g. --seeds 0,1,2"]),
    "seed not a number": (["--seeds", "a"], ["argument --seeds:", "'a' cannot be read as int"]),
    "empty lrs": (["--lrs", ""], ["argument --lrs:", "empty list", "e.g. --lrs 1e-3,3e-3"]),
    "lr item empty": (["--lrs", "1e-3,,3e-3"], ["argument --lrs:", "empty item"]),
    "lr 0": (["--lrs", "0"], ["argument --lrs:", "'0' is not a learning rate"]),
    "lr twice": (["--lrs", "1e-3,0.001"], ["argument --lrs:", "'0.001' is listed twice"]),
    "empty H": (["--inner-steps", ","], ["argument --inner-steps:", "empty list"]),
    "H 0": (["--inner-steps", "0"], ["argument --inner-steps:", "integers >= 1"]),
    "empty optimizers": (["--optimizers", ""], ["argument --optimizers:", "empty list"]),
    "unknown optimizer": (["--optimizers", "Adam"], ["argument --optimizers:", "'Adam' is not an optimizer",
                                                     "AdamW,GPA-AdamW,DiLoCo-AdamW"]),
    "no jobs": (["--jobs", "0"], ["argument --jobs:", "give an integer >= 1"]),
    "negative threads": (["--threads-per-run=-1"], ["argument --threads-per-run:", "integer >= 0"]),
    "no steps": (["--steps", "0"], ["argument --steps:", "integer >= 1"]),
    "no batch": (["--batch", "0"], ["argument --batch:", "integer >= 1"]),
    "no seq len": (["--seq-len", "0"], ["argument --seq-len:", "integer >= 1"]),
    "no val batches": (["--val-batches", "0"], ["argument --val-batches:", "integer >= 1"]),
    "val every 0": (["--val-every", "0"], ["argument --val-every:", "integer >= 1"]),
    "tiny vocab": (["--vocab-size", "100"], ["argument --vocab-size:", "integer >= 258"]),
    "no tokenizer docs": (["--tokenizer-docs", "0"], ["argument --tokenizer-docs:", "integer >= 1"]),
    "mu 1": (["--mu", "1"], ["argument --mu:", "must lie in (0, 1)", "e.g. --mu 0.9"]),
    "mu_y 0": (["--mu-y", "0"], ["argument --mu-y:", "(0, 1]"]),
    "outer lr nan": (["--outer-lr", "nan"], ["argument --outer-lr:", "not a finite number"]),
    "validation after the run": (["--steps", "100", "--val-every", "200"], ["--val-every 200 is longer than the "
                                                                             "run (--steps 100)"]),
    "grid flag with confirm": (["--confirm", TUNED, "--steps", "10"], ["--steps belongs to the shared grid",
                                                                      "remove --steps"]),
    "grid flag with study": (["--study", "spec.json", "--lrs", "1e-3"], ["--lrs belongs to the shared grid"]),
    "seeds with study": (["--study", "spec.json", "--seeds", "0"], ["--seeds is ignored by --study"]),
    "tuned without study": (["--tuned", "t.json"], ["--tuned t.json is where --study writes"]),
    "report with the grid": (["--report", "r"], ["--report r: the shared grid writes its report into --out"]),
}


@pytest.mark.parametrize("case", list(BENCH_CASES))
def test_bench_convergence_refuses_bad_arguments_before_writing(case, scripts, tmp_path, capsys):
    extra, needles = BENCH_CASES[case]
    line = refused(scripts["bench_convergence"], ["--data", str(tmp_path / "data"), "--out", str(tmp_path / "out"),
                                                  *extra], capsys)
    for needle in needles:
        assert needle in line, (needle, line)
    assert not (tmp_path / "out").exists(), "nothing is written"


@pytest.fixture
def confirmed(tmp_path):
    """A data folder (empty shards: enough for the argument checks) and an earlier confirm report."""
    data = tmp_path / "data"
    data.mkdir()
    for name in ("c4-train.00000-of-00001.json.gz", "c4-validation.00000-of-00001.json.gz"):
        (data / name).write_bytes(b"")
    out = tmp_path / "confirm"
    out.mkdir()
    (out / "confirm.md").write_text("the earlier report\n")
    return data, out


CONFIRM_CASES = {  # id: (arguments, what the message must say; {tuned}: the tuned file)
    "empty seeds": (["--seeds", ""], "argument --seeds: '' is an empty list"),
    "a seed twice": (["--seeds", "0,0"], "argument --seeds: '0' is listed twice"),
    "an optimizer it has not": (["--optimizers", "AdamW", "--seeds", "0"],
                                "--optimizers AdamW: {tuned} has no settings for AdamW (it has GPA-AdamW)"),
    "its final seeds empty": ([], "--confirm {tuned}: final_seeds = [] is not a non-empty list of distinct integers"),
}


@pytest.mark.parametrize("case", list(CONFIRM_CASES))
def test_confirm_never_overwrites_a_report_with_an_empty_one(case, scripts, tmp_path, capsys, confirmed):
    extra, needle = CONFIRM_CASES[case]
    data, out = confirmed
    tuned = json.load(open(TUNED))
    tuned["final_seeds"] = []
    tuned["methods"] = {"GPA-AdamW": tuned["methods"]["GPA-AdamW"]}
    path = tmp_path / "tuned.json"
    path.write_text(json.dumps(tuned))
    line = refused(scripts["bench_convergence"], ["--confirm", str(path), "--data", str(data), "--out", str(out),
                                                  *extra], capsys)
    assert needle.format(tuned=path) in line, line
    assert sorted(os.listdir(out)) == ["confirm.md"] and (out / "confirm.md").read_text() == "the earlier report\n"


# ------------------------------------------------------------------------------- scripts/table4.py
@pytest.mark.parametrize("extra,needles", [
    pytest.param(["--inner-steps", "0"], ["argument --inner-steps: '0'", "an integer >= 1", "e.g. --inner-steps 24"],
                 id='--inner-steps 0'),
    pytest.param(["--inner-steps", "8", "-4"], ["argument --inner-steps: '-4'", "an integer >= 1"],
                 id='--inner-steps 8 -4'),
    pytest.param(["--inner-steps", "2.5"], ["argument --inner-steps: '2.5'", "an integer >= 1"],
                 id='--inner-steps 2.5'),
    pytest.param(["--mu", "1.5"], ["argument --mu: '1.5'", "a number in (0, 1)", "e.g. --mu 0.9"], id='--mu 1.5'),
    pytest.param(["--mu", "1"], ["argument --mu: '1'", "(0, 1)"], id='--mu 1'),
    pytest.param(["--mu", "0"], ["argument --mu: '0'", "(0, 1)"], id='--mu 0'),
    pytest.param(["--mu", "nan"], ["argument --mu: 'nan'", "(0, 1)"], id='--mu nan'),
    pytest.param(["--mu", "-0.5"], ["argument --mu: '-0.5'", "(0, 1)"], id='--mu -0.5'),
    pytest.param(["--inner-steps", "8", "8"], ["--inner-steps lists 8 twice", "give each value once"],
                 id='--inner-steps 8 8'),
])
def test_table4_refuses_values_outside_its_domain(extra, needles, scripts, capsys):
    line = refused(scripts["table4"], extra, capsys)
    for needle in needles:
        assert needle in line, (needle, line)


# -------------------------------------------------------------------------- scripts/memory_plan.py
@pytest.mark.parametrize("extra,needles", [
    pytest.param(["--gpu-memory-gib", "0"], ["--gpu-memory-gib 0:", "a positive number", "e.g. --gpu-memory-gib 80"],
                 id='--gpu-memory-gib 0'),
    pytest.param(["--gpu-memory-gib=-80"], ["--gpu-memory-gib -80:", "a positive number"], id='--gpu-memory-gib=-80'),
    pytest.param(["--gpu-memory-gib", "inf"], ["--gpu-memory-gib inf:", "a positive number"],
                 id='--gpu-memory-gib inf'),
    pytest.param(["--search", "--headroom", "1"], ["--headroom 1:", "in [0, 1)", "e.g. --headroom 0.1"],
                 id='--search --headroom 1'),
    pytest.param(["--search", "--headroom=-0.1"], ["--headroom -0.1:", "in [0, 1)"], id='--search --headroom=-0.1'),
    pytest.param(["--headroom", "0.2"], ["--headroom 0.2 is used only by --search", "add --search"],
                 id='--headroom 0.2'),
    pytest.param(["--local-batch", "0"], ["argument --local-batch: '0' is not a whole number >= 1"],
                 id='--local-batch 0'),
    pytest.param(["--nodes", "0"], ["argument --nodes: '0' is not a whole number >= 1"], id='--nodes 0'),
    pytest.param(["--gpus-per-node=-8"], ["argument --gpus-per-node: '-8' is not a whole number >= 1"],
                 id='--gpus-per-node=-8'),
    pytest.param(["--nodes", "two"], ["argument --nodes: 'two' is not a whole number >= 1"], id='--nodes two'),
    pytest.param(["--search", "--local-batch", "4"],
                 ["--local-batch with --search would be ignored", "remove --local-batch"],
                 id='--search --local-batch 4'),
    pytest.param(["--search", "--ac", "full"], ["--ac with --search would be ignored"], id='--search --ac full'),
    pytest.param(["configs/nope.toml"], ["configs/nope.toml: no such config file"], id='configs/nope.toml'),
])
def test_memory_plan_refuses_numbers_out_of_range(extra, needles, scripts, capsys, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("nothing is measured for a bad argument")

    monkeypatch.setattr(scripts["memory_plan"], "measure_configs", never)
    line = refused(scripts["memory_plan"], extra, capsys)
    for needle in needles:
        assert needle in line, (needle, line)
