"""Speedup arithmetic on synthetic curves."""

import pytest

from gpa_titan.analysis.grouping import (
    Run,
    RunGroupingError,
    describe_grouping,
    differing_keys,
    group_runs,
    is_ignored,
)
from gpa_titan.analysis.setting import SettingRuns, all_but_lr, best_by_final_loss, mean_curve
from gpa_titan.analysis.speedup import results_table, speedup_percent, steps_to_reach
from gpa_titan.optim.table4 import gpa_mu_x


def setting(optimizer, h, lr, curves, config=None):
    """A ``SettingRuns`` of ``optimizer`` at ``h`` (DiLoCo's inner steps, GPA's Table-4 mu_x) and ``lr``."""
    settings = {"lr": lr} | ({"inner_steps": h} if optimizer == "DiLoCo-AdamW" else
                             {"mu_x": gpa_mu_x(h)} if h is not None else {})
    return SettingRuns(optimizer, settings, max(curves[0]), curves, config=config or {})


def test_interpolates_between_evaluation_points():
    curve = {0: 5.0, 100: 4.0, 200: 3.0, 300: 2.5}
    assert steps_to_reach(curve, 3.5) == pytest.approx(150.0)
    assert steps_to_reach(curve, 3.0) == pytest.approx(200.0)
    assert steps_to_reach(curve, 2.75) == pytest.approx(250.0)
    assert steps_to_reach(curve, 6.0) == 0.0


def test_never_reached_is_reported_as_such():
    assert steps_to_reach({0: 5.0, 100: 4.0}, 3.9) is None
    assert speedup_percent(None, 1000) is None
    assert steps_to_reach({}, 1.0) is None


def test_first_crossing_counts_for_a_noisy_curve():
    assert steps_to_reach({0: 4.0, 10: 2.0, 20: 3.0, 30: 1.0}, 2.5) == pytest.approx(7.5)


def test_speedup_percent():
    assert speedup_percent(900.0, 1000.0) == pytest.approx(10.0)
    assert speedup_percent(1100.0, 1000.0) == pytest.approx(-10.0)


def test_table_uses_best_lr_mean_over_seeds_and_baseline_final_loss():
    steps = [0, 100, 200, 300, 400]
    adamw = setting(
        "AdamW", None, 1e-3, [dict(zip(steps, [6, 4, 3.4, 3.1, 3.0])), dict(zip(steps, [6, 4, 3.4, 3.1, 3.0]))]
    )
    adamw_bad = setting("AdamW", None, 1e-2, [dict(zip(steps, [6, 5, 4.5, 4.2, 4.0]))])
    gpa = setting(
        "GPA-AdamW", 32, 1e-3, [dict(zip(steps, [6, 3.8, 3.2, 3.0, 2.9])), dict(zip(steps, [6, 3.8, 3.2, 2.9, 2.8]))]
    )
    never = setting("DiLoCo-AdamW", 32, 1e-3, [dict(zip(steps, [6, 4.5, 3.9, 3.5, 3.3]))])
    best = best_by_final_loss([adamw, adamw_bad, gpa, never])
    assert best[("AdamW", None)] is adamw
    table, rows = results_table(best)
    by = {r["optimizer"]: r for r in rows}
    assert by["AdamW"]["steps_to_target"] == 400 and by["AdamW"]["speedup"] == 0
    # GPA's mean curve: 3.0 at step 300 (mean of 3.0 and 2.9 is 2.95 <= 3.0) -> crosses between 200 and 300
    gpa_mean = mean_curve(gpa.curves)
    assert gpa_mean[300] == pytest.approx(2.95)
    assert by["GPA-AdamW"]["steps_to_target"] == pytest.approx(200 + 100 * (3.2 - 3.0) / (3.2 - 2.95))
    assert by["GPA-AdamW"]["speedup"] == pytest.approx(100 * (1 - by["GPA-AdamW"]["steps_to_target"] / 400))
    assert by["DiLoCo-AdamW"]["steps_to_target"] is None
    assert "not reached" in table and "| GPA-AdamW | 32 | 0.001 | 2.8500 ± 0.0707 | 2 |" in table


# ---------------------------------------------------------------------- grouping runs into settings
STEPS = [1, 100, 200, 300, 400]


def make_run(path, seed=0, curve=None, **changes):
    """A run with a flattened GPA config; ``changes`` maps "section__key" to a new value."""
    config = {"optimizer.name": "GPA-AdamW", "optimizer.lr": 1e-3, "optimizer.mu_x": 0.9967, "optimizer.mu_y": 0.9,
              "optimizer.inner_steps": 32, "optimizer.implementation": "fused", "training.steps": 400,
              "validation.freq": 100, "job.dump_folder": f"outputs/{path}", "metrics.log_freq": 10,
              "checkpoint.interval": 100, "debug.seed": seed}
    config |= {k.replace("__", "."): v for k, v in changes.items()}
    return Run(path, config, curve or dict(zip(STEPS, [6, 4, 3.5, 3.2, 3.0 + 0.01 * seed])))


def gpa_only(config):
    """The keys a run's optimizer does not use (GPA: inner_steps; others: GPA's)."""
    if config["optimizer.name"] == "GPA-AdamW":
        return ["optimizer.inner_steps"]
    return ["optimizer.mu_x", "optimizer.mu_y"]


def test_runs_differing_in_a_hyperparameter_are_not_seeds_of_one_setting():
    runs = [make_run("a", 0, optimizer__mu_y=0.3), make_run("b", 1, optimizer__mu_y=0.3),
            make_run("c", 0, optimizer__mu_y=0.9),
            make_run("d", 1, optimizer__mu_y=0.9, metrics__log_freq=1, checkpoint__interval=5,
                     optimizer__implementation="foreach")]
    groups = group_runs(runs, unused=gpa_only)
    assert [[r.path for r in g.runs] for g in groups] == [["a", "b"], ["c", "d"]]
    assert differing_keys([g.setting for g in groups]) == ["optimizer.mu_y"]
    assert "debug.seed" not in groups[0].setting and "job.dump_folder" not in groups[0].setting
    text = describe_grouping(groups)
    assert "Keys that differ between settings: optimizer.mu_y" in text
    assert "setting 1 (optimizer.mu_y=0.3): 2 run(s), seeds 0, 1, last step 400: a b" in text
    assert "setting 2 (optimizer.mu_y=0.9): 2 run(s), seeds 0, 1" in text


def test_keys_of_another_optimizer_do_not_split_seeds():
    a = make_run("a", 0, optimizer__name="AdamW", optimizer__mu_x=0.9)
    b = make_run("b", 1, optimizer__name="AdamW", optimizer__mu_x=0.5)
    assert len(group_runs([a, b], unused=gpa_only)) == 1
    assert len(group_runs([a, b])) == 2, "without knowing which keys are unused, they count"


def test_every_other_key_separates_settings_and_extra_ignored_keys_can_be_given():
    a = make_run("a", 0, training__dataset_path="/data/c4")
    b = make_run("b", 1, training__dataset_path="/scratch/c4")
    assert len(group_runs([a, b])) == 2
    assert len(group_runs([a, b], ignore=["training.dataset_path"])) == 1
    assert is_ignored("metrics.enable_wandb") and is_ignored("debug.seed") and not is_ignored("debug.deterministic")
    assert is_ignored("checkpoint.interval") and not is_ignored("checkpoint.initial_load_path")


def test_runs_of_different_training_length_are_different_settings():
    short = make_run("short", 0, training__steps=20, curve={1: 6.0, 20: 5.0})
    groups = group_runs([make_run("long", 0), short])
    assert len(groups) == 2 and differing_keys([g.setting for g in groups]) == ["training.steps"]


def test_seeds_that_stopped_at_different_steps_are_refused():
    crashed = make_run("crashed", 1, curve={1: 6.0, 100: 4.0, 200: 3.5})
    with pytest.raises(RunGroupingError, match=r"different length.*finished: training.steps 400, last logged step "
                                               r"400; crashed: training.steps 400, last logged step 200"):
        group_runs([make_run("finished", 0), crashed])


def test_an_unfinished_run_alone_is_flagged():
    groups = group_runs([make_run("paused", 0, curve={1: 6.0, 100: 4.0})])
    assert "warning: unfinished: validation loss logged up to step 100, but training.steps 400 validates at step 400" \
        in describe_grouping(groups)


def settings_for_table():
    gpa = [setting("GPA-AdamW", 32, lr, [dict(zip(STEPS, [6, 4, 3.5, 3.1, final]))],
                   config={"optimizer.name": "GPA-AdamW", "optimizer.mu_y": mu_y, "optimizer.lr": lr})
           for mu_y, lr, final in [(0.3, 1e-3, 3.05), (0.3, 3e-3, 2.95), (0.9, 1e-3, 2.9), (0.9, 3e-3, 3.3)]]
    diloco = setting("DiLoCo-AdamW", 32, 1e-3, [dict(zip(STEPS, [6, 4.5, 3.9, 3.5, 3.4]))],
                     config={"optimizer.name": "DiLoCo-AdamW", "optimizer.lr": 1e-3})
    return gpa, diloco


def test_best_lr_is_chosen_within_each_setting_of_the_other_keys():
    gpa, diloco = settings_for_table()
    best = best_by_final_loss([*gpa, diloco], key=all_but_lr)
    assert sorted((s.config.get("optimizer.mu_y"), s.lr) for s in best.values() if s.optimizer == "GPA-AdamW") == [
        (0.3, 3e-3), (0.9, 1e-3)]
    assert len(best_by_final_loss([*gpa, diloco])) == 2, "the default key is (optimizer, H)"


def test_table_without_baseline_has_no_speedup_columns_and_says_so():
    gpa, diloco = settings_for_table()
    table, rows = results_table(best_by_final_loss([*gpa, diloco], key=all_but_lr), baseline=None)
    lines = table.splitlines()
    assert lines[0] == "No baseline: the table has no steps-to-target or speedup columns."
    assert lines[2] == "| optimizer | H | optimizer.mu_y | lr | final val loss (mean ± std) | seeds |"
    assert lines[4:] == ["| DiLoCo-AdamW | 32 | — | 0.001 | 3.4000 ± 0.0000 | 1 |",
                         "| GPA-AdamW | 32 | 0.3 | 0.003 | 2.9500 ± 0.0000 | 1 |",
                         "| GPA-AdamW | 32 | 0.9 | 0.001 | 2.9000 ± 0.0000 | 1 |"]
    assert "speedup" not in rows[0] and "steps to" not in table


def test_table_header_names_the_baseline_used():
    gpa, diloco = settings_for_table()
    best = best_by_final_loss([*gpa, diloco], key=all_but_lr)
    table, rows = results_table(best, baseline="DiLoCo-AdamW")
    lines = table.splitlines()
    assert lines[0].startswith("Baseline: DiLoCo-AdamW (H=32) (lr 0.001): final validation loss 3.4000 at step 400")
    assert lines[2].endswith("| steps to DiLoCo-AdamW (H=32)'s final loss | speedup |")
    assert lines[4].startswith("| DiLoCo-AdamW | 32 | — | 0.001 | 3.4000 ± 0.0000 | 1 | 400 | +0.0% |")
    by = {r["settings"]["optimizer.mu_y"]: r for r in rows}
    assert by[0.9]["steps_to_target"] == pytest.approx(200 + 100 * (3.5 - 3.4) / (3.5 - 3.1))
    # several rows of the baseline optimizer: the best is the baseline, and the header says which
    table, _ = results_table(best, baseline="GPA-AdamW")
    assert "| steps to GPA-AdamW (H=32), optimizer.mu_y 0.9, lr 0.001's final loss | speedup |" in table
    with pytest.raises(ValueError, match=r"no AdamW runs to compare against \(the runs are of DiLoCo-AdamW, GPA"):
        results_table(best, baseline="AdamW")
