"""The paper's Table 2 and Figures 1b, 3 and 9, and the comparison table, on synthetic curves."""

import math

import pytest

from gpa_titan.analysis.figures import figure1b, figure3, figure9, table2, write_figures
from gpa_titan.analysis.formatting import show_value
from gpa_titan.analysis.grouping import Group, Run
from gpa_titan.analysis.setting import SettingRuns, best_by_final_loss, h_key
from gpa_titan.analysis.speedup import comparison_table, results_table
from gpa_titan.optim.table4 import gpa_mu_x

STEPS = 1000


def curve(final: float, start: float = 7.0) -> dict[int, float]:
    """Falls linearly in log-space from ``start`` at step 1 to ``final`` at step 1000 (every 100 steps)."""
    return {s: start + (final - start) * (s / STEPS) ** 0.5 for s in [1, *range(100, STEPS + 1, 100)]}


def gpa(h, mu_y, final, lr=0.008, seeds=1):
    settings = {"lr": lr, "beta1": 0.9, "beta2": 0.95, "mu_x": round(gpa_mu_x(h), 8), "mu_y": mu_y}
    return SettingRuns("GPA-AdamW", settings, STEPS, [curve(final + 0.01 * s) for s in range(seeds)])


def diloco(h, final, seeds=1):
    return SettingRuns("DiLoCo-AdamW", {"lr": 0.008, "beta1": 0.9, "beta2": 0.95, "inner_steps": h, "outer_lr": 0.75,
                                        "outer_momentum": 0.9}, STEPS, [curve(final + 0.01 * s) for s in range(seeds)])


def adamw(final, lr=0.004, seeds=1):
    curves = [curve(final + 0.01 * s) for s in range(seeds)]
    return SettingRuns("AdamW", {"lr": lr, "beta1": 0.9, "beta2": 0.95}, STEPS, curves)


POINTS = [adamw(4.0), adamw(4.2, lr=0.016),
          gpa(1, 0.9, 4.1), gpa(3, 0.9, 3.95), gpa(3, 0.4, 3.9), gpa(10, 0.4, 3.8), gpa(10, 0.4, 3.85, lr=0.016),
          gpa(10, 0.9, 4.3), diloco(1, 4.05), diloco(3, 4.02), diloco(10, 4.4),
          SettingRuns("ScheduleFree-AdamW", {"lr": 0.008, "beta1": 0.9, "beta2": 0.95}, STEPS, [curve(4.03)])]


def test_h_of_points_and_column_keys():
    assert gpa(3, 0.9, 4).h == pytest.approx(3) and diloco(10, 4).h == 10 and adamw(4).h is None
    assert h_key(31.87) == 32 and h_key(2.62) == 2.62 and h_key(0.655) == 0.655 and h_key(3.0000001) == 3


def test_table2_takes_the_best_setting_per_optimizer_and_h():
    text, data = table2(POINTS)
    assert data["H"] == [1, 3, 10]
    rows = data["rows"]
    assert rows["GPA-AdamW"]["3"]["final_mean"] == pytest.approx(3.9)  # mu_y 0.4 beats 0.9
    assert rows["GPA-AdamW"]["10"]["final_mean"] == pytest.approx(3.8)  # best lr at H = 10
    assert rows["DiLoCo-AdamW"]["10"]["final_mean"] == pytest.approx(4.4)
    assert rows["AdamW"]["1"]["final_mean"] == rows["AdamW"]["10"]["final_mean"] == pytest.approx(4.0)
    lines = text.splitlines()
    assert "| paper-equivalent H (H x 12,208 / 1,000) | 12.2 | 36.6 | 122 |" in lines
    assert "| GPA window 1/(1-mu_x): steps (share of run) | 10 (1%) | 29 (2.9%) | 95.4 (9.5%) |" in lines
    assert "| GPA-AdamW | 4.1000 | 3.9000 | **3.8000** |" in lines
    assert "| DiLoCo-AdamW | 4.0500 | **4.0200** | 4.4000 |" in lines
    assert "- GPA-AdamW, H = 10: lr 0.008, b1 0.9, b2 0.95, mu_x 0.989519, mu_y 0.4 (3 setting(s) at this H)" in lines


def test_figure1b_measures_steps_to_adamws_final_loss():
    text, data = figure1b(POINTS)
    assert data["target"] == pytest.approx(4.0) and data["baseline_steps"] == 1000
    gpa_row, diloco_row = data["rows"]["GPA-AdamW"], data["rows"]["DiLoCo-AdamW"]
    assert diloco_row["10"] == {"steps": None, "speedup": None}  # 4.4 never reaches 4.0
    assert gpa_row["10"]["speedup"] > gpa_row["3"]["speedup"] > 0
    # the curve reaches 4.0 where 7 - 3.2 sqrt(s/1000) = 4.0: s = 879; interpolated between 800 and 900
    expected = 800 + 100 * (curve(3.8)[800] - 4.0) / (curve(3.8)[800] - curve(3.8)[900])
    assert gpa_row["10"]["steps"] == pytest.approx(expected)
    assert "not reached" in text and f"{100 * (1 - expected / 1000):+.1f}%" in text


def test_figure3_picks_each_optimizers_best_setting():
    text, chosen = figure3(POINTS)
    assert set(chosen) == {"AdamW", "GPA-AdamW", "DiLoCo-AdamW", "ScheduleFree-AdamW"}
    assert chosen["GPA-AdamW"].final_mean == pytest.approx(3.8) and chosen["AdamW"].settings["lr"] == 0.004
    rows = [line for line in text.splitlines() if line.startswith("| 1000 |")]
    assert rows == ["| 1000 | 4.0000 | 4.0200 | 3.8000 | 4.0300 |"]  # columns in name order: AdamW, DiLoCo, GPA, SF


def test_figure9_is_the_best_loss_per_window_and_mu_y():
    text, data = figure9(POINTS)
    assert data["H"] == [1, 3, 10] and data["mu_y"] == [0.4, 0.9]
    assert data["loss"] == [[None, pytest.approx(3.9), pytest.approx(3.8)], [4.1, 3.95, 4.3]]
    assert "| mu_y = 0.4 | — | 3.9000 | **3.8000** |" in text.splitlines()


def test_comparison_table_rows_and_speedup():
    points = [adamw(4.0, seeds=3), gpa(10, 0.4, 3.8, seeds=3), diloco(3, 4.3, seeds=3)]
    text, rows = comparison_table(points)
    lines = text.splitlines()
    assert lines[0].startswith("Target: AdamW's final validation loss 4.0100")
    assert lines[2] == ("| optimizer | H (paper-equivalent; averaging window) | settings | final val loss (mean ± std) "
                        "| seeds | steps to AdamW's final val loss | speedup |")
    assert lines[4].startswith("| AdamW | — | lr 0.004, b1 0.9, b2 0.95 | 4.0100 ± 0.0100 | 3 | 1000 | +0.0% |")
    assert lines[5].startswith("| DiLoCo-AdamW | 3 (paper-eq. 36.6; window 30 steps = 3% of run)")
    assert lines[5].endswith("| 4.3100 ± 0.0100 | 3 | not reached | — |")
    assert lines[6].startswith("| GPA-AdamW | 10 (paper-eq. 122; window 95.4 steps = 9.5% of run) | lr 0.008")
    gpa_row = rows[2]
    assert gpa_row["speedup"] > 10 and gpa_row["seeds"] == 3
    no_base, _ = comparison_table(points[1:])
    assert no_base.startswith("No baseline") and "| speedup |" not in no_base


def test_diverged_points_never_win():
    points = [adamw(4.0), gpa(3, 0.4, 3.5), SettingRuns("GPA-AdamW", gpa(10, 0.4, 1.0).settings, STEPS, [{}])]
    _, data = table2(points)
    assert data["rows"]["GPA-AdamW"]["10"]["final_mean"] == math.inf
    assert "diverged" in table2(points)[0]
    assert figure3(points)[1]["GPA-AdamW"].final_mean == pytest.approx(3.5)


def test_point_from_a_grouped_setting():
    config = {"optimizer.name": "GPA-AdamW", "optimizer.lr": 0.003, "optimizer.beta1": 0.9, "optimizer.mu_x": 0.9967,
              "optimizer.mu_y": 0.9, "optimizer.implementation": "fused", "training.steps": 12208}
    p = SettingRuns.from_group(Group(config, [Run("r", config, curve(3.2))]))
    assert p.steps == 12208 and p.settings == {"lr": 0.003, "beta1": 0.9, "mu_x": 0.9967, "mu_y": 0.9}
    assert h_key(p.h) == 32  # Table 4's rounded mu_x for H = 32


def test_write_figures_writes_markdown_and_pngs(tmp_path):
    text = write_figures(str(tmp_path), POINTS, "synthetic")
    for name in ("table2", "figure1b", "figure3", "figure9"):
        assert (tmp_path / f"{name}.md").read_text().startswith("synthetic")
        png = (tmp_path / f"{name}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
        assert f"]({name}.png)" in text
    only_adamw = tmp_path / "adamw"
    write_figures(str(only_adamw), [adamw(4.0)], "one")
    assert sorted(p.name for p in only_adamw.iterdir()) == ["figure3.md", "figure3.png"]


def test_an_optimizer_that_only_diverged_is_reported_not_plotted(tmp_path):
    points = [adamw(4.0), SettingRuns("GPA-AdamW", gpa(10, 0.4, 1.0).settings, STEPS, [{}, {}])]
    text, rows = comparison_table(points)
    assert "| diverged | 2 | not reached | — |" in text
    assert set(figure3(points)[1]) == {"AdamW"}
    write_figures(str(tmp_path), points, "diverged")  # no error
    dead_baseline, _ = comparison_table([SettingRuns("AdamW", {"lr": 1.0}, STEPS, [{}]), gpa(3, 0.4, 3.5)])
    assert dead_baseline.startswith("No baseline")


def test_every_view_shows_one_h():
    """H comes from the registry (h_of_setting); the speedup table, Table 2 and the comparison table show the same H."""
    off_grid = SettingRuns("GPA-AdamW", {"lr": 0.01, "mu_x": 0.95, "mu_y": 0.9}, STEPS, [curve(3.7)], config={"k": 1})
    assert off_grid.h == pytest.approx(math.log(0.9) / math.log(0.95)) and off_grid.h_column == 2.05
    records = [adamw(4.0), off_grid, diloco(3, 3.9)]
    _, rows = results_table(best_by_final_loss(records))
    assert [r["inner_steps"] for r in rows] == [None, 3, 2.05]
    assert table2(records)[1]["H"] == [2.05, 3]
    assert [line.split(" | ")[1] for line in comparison_table(records)[0].splitlines()[4:]] == [
        "—", "3 (paper-eq. 36.6; window 30 steps = 3% of run)", "2.05 (paper-eq. 25.1; window 20 steps = 2% of run)"]


def test_one_value_formatter():
    assert [show_value(v) for v in (None, 0.003, 0.9967, 32, "cosine", 1e-8)] == ["—", "0.003", "0.9967", "32",
                                                                                   "cosine", "1e-08"]
    assert [show_value(v, 3) for v in (12.208, 366.24, 3052.0)] == ["12.2", "366", "3,052"]


def muon(final, momentum=0.95):
    settings = {"lr": 0.004, "beta1": 0.8, "beta2": 0.95, "momentum": momentum, "adjust_lr_fn": "match_rms_adamw"}
    return SettingRuns("Muon", settings, STEPS, [curve(final)])


def gpa_muon(h, mu_y, final):
    settings = {"lr": 0.004, "beta1": 0.8, "beta2": 0.95, "momentum": 0.95, "mu_x": round(gpa_mu_x(h), 8),
                "mu_y": mu_y, "adjust_lr_fn": "match_rms_adamw"}
    return SettingRuns("GPA-Muon", settings, STEPS, [curve(final)])


def test_muon_and_gpa_muon_take_their_places_in_table2_and_have_their_own_figure9(tmp_path):
    points = [*POINTS, muon(3.7), muon(3.75, momentum=0.9), gpa_muon(1, 0.2, 3.72), gpa_muon(3, 0.2, 3.6),
              gpa_muon(3, 0.6, 3.65)]
    text, data = table2(points)
    assert list(data["rows"]) == ["AdamW", "DiLoCo-AdamW", "GPA-AdamW", "ScheduleFree-AdamW", "Muon", "GPA-Muon"]
    lines = text.splitlines()
    assert "| Muon (no H) | 3.7000 | 3.7000 | 3.7000 |" in lines  # its best setting, one value for every H
    assert "| GPA-Muon | 3.7200 | **3.6000** | — |" in lines
    muon_text, muon_data = figure9(points, "GPA-Muon")
    assert muon_text.startswith("GPA-Muon:") and muon_data["mu_y"] == [0.2, 0.6]
    assert muon_data["loss"] == [[pytest.approx(3.72), pytest.approx(3.6)], [None, pytest.approx(3.65)]]
    assert figure9(points)[1] == figure9(POINTS)[1]  # GPA-AdamW's Figure 9 is GPA-AdamW's runs alone
    write_figures(str(tmp_path), points, "both", which=("table2", "figure9"))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "figure9.md", "figure9.png", "figure9_gpa_muon.md", "figure9_gpa_muon.png", "table2.md", "table2.png"]
    assert (tmp_path / "figure9_gpa_muon.md").read_text().splitlines()[2].endswith(", GPA-Muon")
    only_muon = tmp_path / "muon"
    write_figures(str(only_muon), [muon(3.7), gpa_muon(3, 0.2, 3.6)], "muon", which=("figure9",))
    assert sorted(p.name for p in only_muon.iterdir()) == ["figure9_gpa_muon.md", "figure9_gpa_muon.png"]
