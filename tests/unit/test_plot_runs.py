"""scripts/plot_runs.py (its logic, gpa_titan/analysis/plot_runs.py) on synthetic run folders (a
real resolved config in run_info.json, validation losses in TensorBoard files): grouping,
refusals, and tables without a baseline."""

import copy
import json

import pytest
from torch.utils.tensorboard import SummaryWriter
from torchtitan.config import ConfigManager

from gpa_titan.analysis.logs import VAL_LOSS
from gpa_titan.paths import DEBUG_CONFIG

STEPS = [1, 100, 200, 300, 400]


@pytest.fixture(scope="module")
def plot_runs():
    """The logic of ``scripts/plot_runs.py``."""
    from gpa_titan.analysis import plot_runs

    return plot_runs


@pytest.fixture(scope="module")
def base_config():
    """The resolved config of configs/debug_cpu.toml (GPA-AdamW, 400 steps, validation every 100),
    with the optimizer values these tests expect pinned (lr 0.003, H = 1, mu_y 0.8), so that a
    new tuned demo setting does not change them."""
    pinned = ["--optimizer.lr", "0.003", "--optimizer.mu_x", "0.9", "--optimizer.mu_y", "0.8"]
    config = ConfigManager().parse_args(["--job.config_file", DEBUG_CONFIG, "--validation.freq", "100", *pinned])
    config = config.to_dict()
    return json.loads(json.dumps(config, default=str))


def write_run(root, name, base, curve=None, seed=0, **changes):
    """A dump folder: run_info.json with ``base`` changed by ``section__key=value``, and the
    validation curve (default: falling to 3.0 + 0.01 * seed) in a TensorBoard file."""
    config = copy.deepcopy(base)
    config["debug"]["seed"] = seed
    config["job"]["dump_folder"] = str(root / name)
    for key, value in changes.items():
        section, field = key.split("__")
        config[section][field] = value
    path = root / name
    path.mkdir(parents=True)
    (path / "run_info.json").write_text(json.dumps({"config": config}))
    writer = SummaryWriter(str(path / "tb"))
    for step, loss in (curve or dict(zip(STEPS, [7.0, 5.0, 4.0, 3.5, 3.0 + 0.01 * seed]))).items():
        writer.add_scalar(VAL_LOSS, loss, step)
    writer.close()
    return str(path)


def mu_y_runs(root, base):
    """mu_y 0.3 and 0.9, two seeds each: two settings, not one of four seeds."""
    return [write_run(root, f"muy{mu_y}_seed{seed}", base, seed=seed, optimizer__mu_y=mu_y,
                      curve=dict(zip(STEPS, [7.0, 5.0, 4.0, 3.5, final + 0.01 * seed])))
            for mu_y, final in ((0.3, 3.2), (0.9, 3.0)) for seed in (0, 1)]


def table_of(stdout):
    lines = stdout.strip().splitlines()
    start = max(i for i, line in enumerate(lines) if line.startswith("| optimizer |"))
    return lines[start - 2], lines[start], lines[start + 2:]


def test_settings_that_differ_are_not_averaged_and_no_baseline_is_needed(tmp_path, plot_runs, base_config, capsys):
    runs = mu_y_runs(tmp_path / "runs", base_config)
    runs.append(write_run(tmp_path / "runs", "short", base_config, training__steps=20, curve={1: 7.0, 20: 6.0}))
    assert plot_runs.main([*runs, "--out", str(tmp_path / "fig")]) == 0
    out = capsys.readouterr().out
    assert "Keys that differ between settings: optimizer.mu_y, training.steps" in out
    assert f"2 run(s), seeds 0, 1, last step 400: {runs[0]} {runs[1]}" in out
    assert f"2 run(s), seeds 0, 1, last step 400: {runs[2]} {runs[3]}" in out
    assert "No baseline: no AdamW runs among these (optimizers: GPA-AdamW); give --baseline NAME" in out
    note, header, rows = table_of(out)
    assert note == "No baseline: the table has no steps-to-target or speedup columns."
    assert header == "| optimizer | H | optimizer.mu_y | training.steps | lr | final val loss (mean ± std) | seeds |"
    assert rows == ["| GPA-AdamW | 1 | 0.3 | 400 | 0.003 | 3.2050 ± 0.0071 | 2 |",
                    "| GPA-AdamW | 1 | 0.8 | 20 | 0.003 | 6.0000 ± 0.0000 | 1 |",
                    "| GPA-AdamW | 1 | 0.9 | 400 | 0.003 | 3.0050 ± 0.0071 | 2 |"]
    results = json.loads((tmp_path / "fig" / "results.json").read_text())
    assert results["baseline"] is None and [r["seeds"] for r in results["rows"]] == [2, 1, 2]
    assert (tmp_path / "fig" / "validation_loss.png").stat().st_size > 5000


def test_seeds_of_different_length_are_refused(tmp_path, plot_runs, base_config):
    done = write_run(tmp_path, "done", base_config, seed=0)
    crashed = write_run(tmp_path, "crashed", base_config, seed=1, curve={1: 7.0, 100: 5.0, 200: 4.0})
    with pytest.raises(SystemExit) as e:
        plot_runs.main([done, crashed, "--out", str(tmp_path / "fig")])
    message = str(e.value)
    assert message.startswith("error: these runs are seeds of one setting but of different length")
    assert f"{done}: training.steps 400, last logged step 400" in message
    assert f"{crashed}: training.steps 400, last logged step 200" in message
    assert not (tmp_path / "fig").exists()


def test_baseline_default_explicit_and_missing(tmp_path, plot_runs, base_config, capsys):
    gpa = mu_y_runs(tmp_path, base_config)
    adamw = [write_run(tmp_path, f"adamw{seed}", base_config, seed=seed, optimizer__name="AdamW",
                       optimizer__mu_y=0.5 + seed / 10,  # not AdamW's key: the two are seeds of one setting
                       curve=dict(zip(STEPS, [7.0, 5.0, 3.8, 3.1, 3.1]))) for seed in (0, 1)]
    assert plot_runs.main([*gpa, *adamw, "--out", str(tmp_path / "fig")]) == 0
    out = capsys.readouterr().out
    assert "Using AdamW as the baseline (the default; --baseline NAME or none)." in out
    note, header, rows = table_of(out)
    assert header.endswith("| seeds | steps to AdamW's final loss | speedup |")
    assert rows[0] == "| AdamW | — | — | 0.003 | 3.1000 ± 0.0000 | 2 | 400 | +0.0% |"

    assert plot_runs.main([*gpa, *adamw, "--out", str(tmp_path / "fig"), "--baseline", "none"]) == 0
    assert table_of(capsys.readouterr().out)[0].startswith("No baseline")

    with pytest.raises(SystemExit, match=r"error: --baseline DiLoCo-AdamW: no runs of DiLoCo-AdamW among these; "
                                         r"their optimizers are GPA-AdamW"):
        plot_runs.main([*gpa, "--out", str(tmp_path / "fig"), "--baseline", "DiLoCo-AdamW"])


def test_a_sweep_folder_stands_for_its_runs(tmp_path, plot_runs, base_config, capsys):
    sweep = tmp_path / "sweeps" / "mu"
    runs = mu_y_runs(sweep, base_config)
    (sweep / "runs.tsv").write_text("name\toverrides\n")
    assert plot_runs.main([str(sweep), "--out", str(tmp_path / "fig")]) == 0
    assert "4 run(s) in 2 setting(s)" in capsys.readouterr().out
    # a shell glob over the sweep folder also catches runs.tsv: skipped, with a note
    assert plot_runs.main([*runs, str(sweep / "runs.tsv"), "--out", str(tmp_path / "fig")]) == 0
    captured = capsys.readouterr()
    assert "4 run(s) in 2 setting(s)" in captured.out and "skipping" in captured.err and "runs.tsv" in captured.err
