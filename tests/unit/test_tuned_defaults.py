"""The demo starts from the CPU tuning study (docs/results/tuned.json) while the library's
defaults are the paper's Llama values, and each paper config's header gives a sweep command
that scripts/sweep.py accepts."""

import importlib.util
import inspect
import os
import re
import shlex
import tomllib

import pytest

from gpa_titan.optim import GPAAdamW
from gpa_titan.optim.registry import check_fields
from gpa_titan.optim.table4 import PAPER_MU_Y, gpa_mu_x
from gpa_titan.paths import CONFIG_DIR, DEBUG_CONFIG, TUNED_SETTINGS
from gpa_titan.study.spec import METHOD_KNOBS, StudySpecError, knobs_for_run_length
from gpa_titan.study.tuned import load_tuned_settings
from helpers import REPO


@pytest.fixture(scope="module")
def tuned():
    return load_tuned_settings(TUNED_SETTINGS)


def test_tuned_settings_cover_every_method_with_valid_values(tuned):
    assert set(tuned["methods"]) == set(METHOD_KNOBS)
    for name, entry in tuned["methods"].items():
        assert set(entry["knobs"]) == set(METHOD_KNOBS[name]), name
        assert entry["optimizer"]["name"] == name
        check_fields(entry["optimizer"])  # raises if an optimizer rejects a value


def test_gpa_defaults_are_the_papers_llama_values_everywhere(tuned):
    """One default per hyperparameter: the class, the job-config dataclass, the float64
    reference and every paper config agree on the paper's mu_x and mu_y; the study's
    small-scale mu_y stays in the demo config and tuned.json, and is not the default."""
    from gpa_titan.optim.reference import ReferenceGPAAdamW
    from gpa_titan.titan.job_config import Optimizer

    defaults = {k: inspect.signature(GPAAdamW).parameters[k].default for k in ("mu_x", "mu_y")}
    assert defaults == {"mu_x": round(gpa_mu_x(32), 4), "mu_y": PAPER_MU_Y}
    assert {k: getattr(Optimizer(), k) for k in defaults} == defaults
    assert {k: inspect.signature(ReferenceGPAAdamW).parameters[k].default for k in defaults} == defaults
    for k, v in defaults.items():
        assert f"{k} (float, default {v:g})" in GPAAdamW.__doc__
    paper_configs = [n for n in os.listdir(CONFIG_DIR) if n.startswith("llama_")]
    assert paper_configs
    for name in paper_configs:
        with open(os.path.join(CONFIG_DIR, name), "rb") as f:
            opt = tomllib.load(f)["optimizer"]
        assert {k: opt[k] for k in defaults} == defaults, name
    assert tuned["methods"]["GPA-AdamW"]["optimizer"]["mu_y"] != PAPER_MU_Y  # the small-scale finding


def test_demo_config_runs_gpa_at_the_tuned_setting_with_its_window_scaled(tuned):
    with open(DEBUG_CONFIG, "rb") as f:
        config = tomllib.load(f)
    opt, steps = config["optimizer"], config["training"]["steps"]
    gpa = tuned["methods"]["GPA-AdamW"]
    assert opt["name"] == "GPA-AdamW"
    for key in ("lr", "beta1", "beta2", "mu_y"):
        assert opt[key] == gpa["optimizer"][key], key
    scaled = knobs_for_run_length("GPA-AdamW", gpa["knobs"], tuned["setup"]["steps"], steps)
    assert scaled["H"] == pytest.approx(gpa["knobs"]["H"] * steps / tuned["setup"]["steps"])
    assert opt["mu_x"] == pytest.approx(gpa_mu_x(scaled["H"]), abs=5e-5)


def test_run_length_scaling_keeps_the_share_of_the_run_and_diloco_h_whole():
    assert knobs_for_run_length("GPA-AdamW", {"H": 3.0, "lr": 1.0}, 1000, 12208) == {
        "H": pytest.approx(36.624), "lr": 1.0}
    assert knobs_for_run_length("DiLoCo-AdamW", {"H": 1}, 1000, 400) == {"H": 1}
    assert knobs_for_run_length("DiLoCo-AdamW", {"H": 30}, 1000, 400) == {"H": 12}
    assert knobs_for_run_length("AdamW", {"lr": 0.1}, 1000, 400) == {"lr": 0.1}


def test_a_missing_or_foreign_tuned_file_is_a_clear_error(tmp_path):
    with pytest.raises(StudySpecError, match="written by scripts/bench_convergence.py"):
        load_tuned_settings(str(tmp_path / "nope.json"))
    (tmp_path / "other.json").write_text('{"rows": []}')
    with pytest.raises(StudySpecError, match="not a study's tuned settings"):
        load_tuned_settings(str(tmp_path / "other.json"))


def _sweep_module():
    spec = importlib.util.spec_from_file_location("sweep", os.path.join(REPO, "scripts", "sweep.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", sorted(n for n in os.listdir(CONFIG_DIR) if n.startswith("llama_")))
def test_each_paper_config_header_gives_a_sweep_that_runs(name, tmp_path, monkeypatch, capsys):
    header = open(os.path.join(CONFIG_DIR, name)).read().split("\n[", 1)[0]
    match = re.search(r"Sweep first \((\d+) runs[^\n]*\n#\s+(python scripts/sweep\.py [^\n]+)", header)
    assert match, f"{name}: no 'Sweep first' command in its header"
    argv = shlex.split(match.group(2))[2:]
    assert argv[argv.index("--config") + 1] == f"configs/{name}"
    if "_gpa" in name:
        assert "--mu-y" in argv and "--inner-steps" in argv and "--lr" in argv
    monkeypatch.chdir(REPO)
    assert _sweep_module().main([*argv, "--dry-run", "--out", str(tmp_path)]) == 0
    runs = (tmp_path / argv[argv.index("--name") + 1] / "runs.tsv").read_text().splitlines()[1:]
    assert len(runs) == int(match.group(1))
