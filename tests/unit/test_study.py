"""The tuning study's plan: the spec and its checks, grid phases, selection (the incumbent is
kept, diverged runs lose), the parallel driver, and agreement with the optimizer registry."""

import json
import math
import os
import threading
import time

import pytest

from gpa_titan.optim.registry import OPTIMIZERS, STUDIED_OPTIMIZERS, check_fields
from gpa_titan.optim.table4 import gpa_mu_x
from gpa_titan.study import grid
from gpa_titan.study.launcher import BenchError, finished_result
from gpa_titan.study.planner import RunRequest, RunResult, confirm_plan, drive, method_study
from gpa_titan.study.spec import (
    METHOD_KNOBS,
    Phase,
    StudySpec,
    StudySpecError,
    expand,
    knobs_name,
    optimizer_fields,
    resolve,
)

GPA_START = {"lr": 0.008, "beta1": 0.9, "beta2": 0.95, "mu_y": 0.6, "H": 3}


def spec_dict(**methods):
    return {"name": "t", "setup": {"steps": 100, "val_every": 10}, "final": {"seeds": [0, 1, 2]},
            "methods": methods or {"GPA-AdamW": {"start": dict(GPA_START), "phases": [
                {"name": "lr", "grid": {"lr": [0.004, 0.008, 0.016]}},
                {"name": "mu_y x window", "grid": {"mu_y": [0.2, 0.6, 0.9], "H": [1, 3, 10]}},
                {"name": "betas", "grid": {"beta1,beta2": [[0.9, 0.95], [0.8, 0.99]]}},
                {"name": "lr again", "grid": {"lr": ["x0.5", "x1", "x2"]}}]}}}


def test_the_knobs_match_the_registry():
    assert set(METHOD_KNOBS) == set(STUDIED_OPTIMIZERS)  # the optimizers the study covers
    setup = StudySpec.from_dict(spec_dict()).setup
    starts = {"AdamW": {"lr": 1e-3, "beta1": 0.9, "beta2": 0.95}, "GPA-AdamW": GPA_START,
              "DiLoCo-AdamW": {"lr": 1e-3, "beta1": 0.9, "beta2": 0.95, "H": 4, "outer_lr": 0.7, "outer_momentum": 0.9},
              "ScheduleFree-AdamW": {"lr": 1e-3, "beta1": 0.9, "beta2": 0.95},
              "Muon": {"lr": 1e-3, "beta1": 0.9, "beta2": 0.95, "momentum": 0.9},
              "GPA-Muon": {**GPA_START, "momentum": 0.9}}
    for name, spec in ((n, OPTIMIZERS[n]) for n in STUDIED_OPTIMIZERS):
        fields = optimizer_fields(name, starts[name], setup)
        assert set(fields) == {"name", "lr", "beta1", "beta2", "eps", "weight_decay", *spec.fields}
        assert set(METHOD_KNOBS[name]) | set(spec.fixed_in_studies) | {spec.h_field} >= set(spec.fields), name
        for key, value in spec.fixed_in_studies.items():
            assert fields[key] == value and key not in METHOD_KNOBS[name], (name, key)
        check_fields(fields)  # the registry accepts them
    # Muon in a study: one lr on AdamW's scale for its matrices and its AdamW part (Moonshot's lr scaling)
    for name in ("Muon", "GPA-Muon"):
        fields = optimizer_fields(name, starts[name], setup)
        assert fields["adjust_lr_fn"] == "match_rms_adamw" and fields["nesterov"] is True and fields["ns_steps"] == 5
        assert fields["adamw_lr"] == fields["adamw_weight_decay"] == -1  # the AdamW part takes lr and weight decay
    assert optimizer_fields("ScheduleFree-AdamW", starts["ScheduleFree-AdamW"], setup)["warmup_steps"] == 0


def test_optimizer_values_become_flags_the_trainer_parses():
    """Every value type of every optimizer's study fields reaches the trainer's config (a bool is a
    flag or its ``no-`` form: ``--optimizer.nesterov True`` is refused by the parser)."""
    from torchtitan.config import ConfigManager

    from gpa_titan.paths import DEBUG_CONFIG
    from gpa_titan.study.launcher import optimizer_cli

    setup = StudySpec.from_dict(spec_dict()).setup
    fields = optimizer_fields("GPA-Muon", {**GPA_START, "momentum": 0.9}, setup)
    for nesterov in (True, False):
        cli = optimizer_cli(fields | {"nesterov": nesterov})
        assert ("--optimizer.nesterov" if nesterov else "--optimizer.no-nesterov") in cli
        config = ConfigManager().parse_args(["--job.config_file", DEBUG_CONFIG, *cli])
        for key, value in (fields | {"nesterov": nesterov}).items():
            assert getattr(config.optimizer, key) == (pytest.approx(value) if isinstance(value, float) else value), key


def test_gpa_h_sets_mu_x_by_table_4_and_diloco_h_must_be_an_integer():
    setup = StudySpec.from_dict(spec_dict()).setup
    assert optimizer_fields("GPA-AdamW", GPA_START, setup)["mu_x"] == pytest.approx(gpa_mu_x(3), abs=1e-8)
    assert optimizer_fields("GPA-AdamW", {**GPA_START, "H": 2.62}, setup)["mu_x"] == pytest.approx(0.9606, abs=1e-4)
    diloco = {"lr": 1e-3, "beta1": 0.9, "beta2": 0.95, "H": 2.5, "outer_lr": 0.7, "outer_momentum": 0.9}
    with pytest.raises(ValueError, match="integer"):
        optimizer_fields("DiLoCo-AdamW", diloco, setup)


@pytest.mark.parametrize("change, message", [
    (lambda d: d["methods"].update({"Adam": {}}), "'Adam' is not one of"),
    (lambda d: d["methods"]["GPA-AdamW"]["start"].pop("mu_y"), r"missing \['mu_y'\]"),
    (lambda d: d["methods"]["GPA-AdamW"]["phases"][0]["grid"].update({"outer_lr": [1.0]}), "not a hyperparameter"),
    (lambda d: d["methods"]["GPA-AdamW"]["phases"][0]["grid"].update({"lr": []}), "non-empty list"),
    (lambda d: d["methods"]["GPA-AdamW"]["phases"][0]["grid"].update({"lr": ["y2"]}), "x<factor>"),
    (lambda d: d["methods"]["GPA-AdamW"]["phases"][2]["grid"].update({"beta1,beta2": [[0.9]]}), "list of 2"),
    (lambda d: d["setup"].update({"stepz": 3}), "not a setup key"),
    (lambda d: d["setup"].update({"steps": 0}), "integer >= 1"),
    (lambda d: d.update({"tuning": {"fraction": 1.5}}), "fraction"),
    (lambda d: d.update({"final": {"seeds": []}}), "seeds"),
])
def test_spec_errors_name_the_key(change, message):
    data = spec_dict()
    change(data)
    with pytest.raises(StudySpecError, match=message):
        StudySpec.from_dict(data)


def test_expand_resolves_relative_values_pairs_and_repeats():
    current = dict(GPA_START)
    assert resolve("x2", 0.004) == 0.008 and resolve(0.30000000000000004, 1) == 0.3 and resolve("x0.5", 3) == 1.5
    lrs = expand(Phase("lr", {"lr": ["x0.5", "x1", 0.008, "x2"]}), current)
    assert [k["lr"] for k in lrs] == [0.004, 0.008, 0.016]  # x1 and 0.008 are one run
    grid = expand(Phase("g", {"mu_y": [0.2, 0.9], "H": [1, 10]}), current)
    assert [(k["mu_y"], k["H"]) for k in grid] == [(0.2, 1), (0.2, 10), (0.9, 1), (0.9, 10)]
    assert all(k["lr"] == 0.008 for k in grid)
    pairs = expand(Phase("b", {"beta1,beta2": [[0.8, 0.95], [0.9, 0.99]]}), current)
    assert [(k["beta1"], k["beta2"]) for k in pairs] == [(0.8, 0.95), (0.9, 0.99)]


def test_names_are_unique_and_readable():
    assert knobs_name("GPA-AdamW", GPA_START) == "GPA-AdamW_lr0.008_b1-0.9_b2-0.95_muy0.6_H3"
    r = RunRequest.of("GPA-AdamW", GPA_START, 1, "tuning")
    assert r.name.endswith("_seed1") and r.key.startswith("tuning/") and r.knobs == GPA_START


def synthetic_loss(request: RunRequest) -> float:
    """Best at lr 0.016, mu_y 0.2, H 10, betas (0.8, 0.99); seeds add a little noise."""
    k = request.knobs
    return (3.0 + (math.log2(k["lr"] / 0.016)) ** 2 * 0.1 + abs(k["mu_y"] - 0.2) + abs(math.log10(k["H"] / 10))
            + (0.0 if (k["beta1"], k["beta2"]) == (0.8, 0.99) else 0.05) + 0.001 * request.seed)


def run_study(loss=synthetic_loss, jobs=2, spec=None):
    spec = spec or StudySpec.from_dict(spec_dict())
    executed, records = [], []
    lock = threading.Lock()

    def execute(request):
        with lock:
            executed.append(request.key)
        time.sleep(0.001)
        value = loss(request)
        return RunResult(value, {1: 9.0, 100: value}, diverged=math.isinf(value))

    plans = {m.name: method_study(m, spec.tuning_seed, spec.final_seeds, records.append) for m in spec.methods}
    return drive(plans, execute, jobs), executed, records


def test_phases_choose_in_order_and_end_with_final_seeds():
    outcomes, executed, records = run_study()
    o = outcomes["GPA-AdamW"]
    assert [r.name for r in records] == ["lr", "mu_y x window", "betas", "lr again"]
    assert records[0].chosen["lr"] == 0.016 and records[0].chosen["mu_y"] == 0.6  # lr at the start's mu_y
    assert (records[1].chosen["mu_y"], records[1].chosen["H"]) == (0.2, 10)
    assert (records[2].chosen["beta1"], records[2].chosen["beta2"]) == (0.8, 0.99)
    assert o.chosen == {"lr": 0.016, "beta1": 0.8, "beta2": 0.99, "mu_y": 0.2, "H": 10}
    assert sorted(o.finals) == [0, 1, 2] and o.finals[2].final == pytest.approx(3.002)
    assert len(executed) == len(set(executed)), "no run twice"
    # 3 lr; 9 grid points, one of them run in the lr phase; 2 betas, one the incumbent's; lr x0.5 and x2 (x1 ran)
    assert sum(k.startswith("tuning/") for k in executed) == 3 + 8 + 1 + 2
    assert sum(k.startswith("final/") for k in executed) == 3


def test_a_phase_keeps_the_incumbent_unless_beaten():
    spec = StudySpec.from_dict(spec_dict(**{"GPA-AdamW": {"start": GPA_START, "phases": [
        {"name": "lr", "grid": {"lr": [0.016]}}, {"name": "worse", "grid": {"mu_y": [0.9]}}]}}))
    outcomes, _, records = run_study(spec=spec)
    assert records[1].chosen["mu_y"] == 0.6 and any(c["incumbent"] for c in records[1].candidates)
    assert outcomes["GPA-AdamW"].chosen["mu_y"] == 0.6


def test_diverged_runs_lose_and_a_phase_with_only_diverged_runs_is_an_error():
    def loss(request):
        return math.inf if request.knobs["lr"] > 0.01 else synthetic_loss(request)

    outcomes, _, records = run_study(loss)
    assert records[0].chosen["lr"] == 0.008
    assert [c["diverged"] for c in records[0].candidates] == [False, False, True]
    with pytest.raises(RuntimeError, match="every run of phase 'lr' diverged"):
        run_study(lambda r: math.inf)


def test_the_driver_runs_plans_in_parallel_and_a_failure_stops_it():
    spec = StudySpec.from_dict(spec_dict(**{
        "AdamW": {"start": {"lr": 1e-3, "beta1": 0.9, "beta2": 0.95},
                  "phases": [{"name": "lr", "grid": {"lr": [1e-3]}}]},
        "ScheduleFree-AdamW": {"start": {"lr": 1e-3, "beta1": 0.9, "beta2": 0.95},
                               "phases": [{"name": "lr", "grid": {"lr": [1e-3, 2e-3]}}]}}))
    active, peak = [0], [0]
    lock = threading.Lock()

    def execute(request):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.05)
        with lock:
            active[0] -= 1
        return RunResult(1.0, {10: 1.0})

    plans = {m.name: method_study(m, 0, [0, 1], None) for m in spec.methods}
    outcomes = drive(plans, execute, jobs=2)
    assert peak[0] == 2 and set(outcomes) == {"AdamW", "ScheduleFree-AdamW"}

    def failing(request):
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        drive({"c": confirm_plan("AdamW", {"lr": 1e-3, "beta1": 0.9, "beta2": 0.95}, [0, 1])}, failing, jobs=2)
    with pytest.raises(ValueError, match="jobs"):
        drive({}, failing, jobs=0)


def test_the_shipped_spec_is_valid_and_its_grids_pass_the_optimizers_checks():
    import os

    from helpers import REPO

    spec = StudySpec.load(os.path.join(REPO, "docs", "results", "study_spec.json"))
    assert spec.setup["steps"] >= 1000 and len(spec.final_seeds) >= 3
    assert {m.name for m in spec.methods} == set(STUDIED_OPTIMIZERS)
    for m in spec.methods:
        current = dict(m.start)
        for phase in m.phases:
            for knobs in expand(phase, current):
                check_fields(optimizer_fields(m.name, knobs, spec.setup))
    gpa = spec.method("GPA-AdamW")
    mu_ys = {v for p in gpa.phases for v in p.grid.get("mu_y", [])}
    assert min(mu_ys) < 0.5, "mu_y well below the paper's 0.8 is swept"


def test_an_edge_optimum_extends_the_grid_until_it_gets_worse():
    def phases(extend):
        return {"GPA-AdamW": {"start": dict(GPA_START), "phases": [
            {"name": "lr", "grid": {"lr": [0.004, 0.008, 0.016]}, "extend": extend}]}}

    def loss(request):  # best at lr 0.001
        return 3.0 + abs(math.log2(request.knobs["lr"] / 0.001))

    outcomes, executed, records = run_study(loss, spec=StudySpec.from_dict(spec_dict(**phases(3))))
    lrs = [c["knobs"]["lr"] for c in records[0].candidates]
    assert lrs == [0.004, 0.008, 0.016, 0.002, 0.001, 0.0005]  # 0.0005 is worse: stop
    assert [c.get("extension", False) for c in records[0].candidates] == [False] * 3 + [True] * 3
    assert outcomes["GPA-AdamW"].chosen["lr"] == 0.001
    _, _, capped = run_study(loss, spec=StudySpec.from_dict(spec_dict(**phases(1))))
    assert [c["knobs"]["lr"] for c in capped[0].candidates] == [0.004, 0.008, 0.016, 0.002]
    _, _, up = run_study(lambda r: 3.0 - r.knobs["lr"], spec=StudySpec.from_dict(spec_dict(**phases(2))))
    assert [c["knobs"]["lr"] for c in up[0].candidates][3:] == [0.032, 0.064]  # the upper edge too
    _, _, inside = run_study(lambda r: abs(r.knobs["lr"] - 0.008), spec=StudySpec.from_dict(spec_dict(**phases(3))))
    assert len(inside[0].candidates) == 3  # an interior optimum: nothing more
    bad = spec_dict(**phases(2))
    bad["methods"]["GPA-AdamW"]["phases"][0]["grid"]["mu_y"] = [0.5]
    with pytest.raises(StudySpecError, match="extend needs a grid of one hyperparameter"):
        StudySpec.from_dict(bad)


def _write_record(dump, args):
    os.makedirs(dump)
    with open(os.path.join(dump, "bench_run.json"), "w") as f:
        json.dump({"args": args, "diverged": True, "wall_s": 1.0, "cpu_s": 1.0}, f)


def test_a_finished_run_is_found_from_another_clone_but_not_with_other_settings(tmp_path):
    recorded = ["--job.config_file", "/elsewhere/clone/configs/debug_cpu.toml", "--optimizer.lr", "0.004"]
    dump = str(tmp_path / "run")
    _write_record(dump, recorded)
    here = ["--job.config_file", "/work/main/configs/debug_cpu.toml", "--optimizer.lr", "0.004"]
    assert finished_result(dump, here, steps=10).diverged
    for other in (["--job.config_file", "/work/main/configs/llama3_160m.toml", "--optimizer.lr", "0.004"],
                  ["--job.config_file", "/work/main/configs/debug_cpu.toml", "--optimizer.lr", "0.008"]):
        with pytest.raises(BenchError, match="holds a run of other settings"):
            finished_result(dump, other, steps=10)


def _finished_grid_run(dump, args, steps):
    """A finished run's folder: its bench_run.json (the arguments it ran with) and a validation curve."""
    from torch.utils.tensorboard import SummaryWriter

    os.makedirs(dump)
    with open(os.path.join(dump, "bench_run.json"), "w") as f:
        json.dump({"args": args, "diverged": False, "wall_s": 1.0, "cpu_s": 1.0, "final": 3.0}, f)
    writer = SummaryWriter(os.path.join(dump, "tb"))
    for step in (1, steps):
        writer.add_scalar("validation_metrics/loss", 3.0, step)
    writer.close()


def test_a_grid_rerun_with_other_settings_does_not_report_the_stale_runs(tmp_path, monkeypatch):
    """Grid run folders are named by optimizer, H, lr and seed only: a rerun with another --mu-y
    must not take the finished runs of the first as its own (it did, by the folder's name alone)."""
    from types import SimpleNamespace

    a = SimpleNamespace(optimizers=["GPA-AdamW"], out=str(tmp_path / "out"), data=str(tmp_path / "data"),
                        vocab_size=512, tokenizer_docs=10, device="cpu", threads_per_run=1, inner_steps=[4],
                        lrs=[3e-3], seeds=[0], steps=8, seq_len=32, batch=4, val_batches=2, val_every=4,
                        flavor="debug", mu=0.9, mu_y=0.9, outer_lr=0.75, jobs=1, study=None, confirm=None)
    tokenizer = str(tmp_path / "tok")
    monkeypatch.setattr(grid, "ensure_tokenizer", lambda *args: tokenizer)
    launched = []
    monkeypatch.setattr("gpa_titan.study.launcher.launch", lambda *args: launched.append(args))
    dump = os.path.join(a.out, "runs", grid.run_name("GPA-AdamW", 4, 3e-3, 0))
    _finished_grid_run(dump, grid.grid_run_args(a, dump, tokenizer, "GPA-AdamW", 4, 3e-3, 0), 8)
    a.mu_y = 0.5  # the same run names, another mu_y
    with pytest.raises(SystemExit, match="holds a run of other settings"):
        grid.run_grid(a)
    assert launched == []
    a.mu_y = 0.9  # the same settings: the finished run is reused, nothing runs
    monkeypatch.setattr(grid, "write_report", lambda *args, **kwargs: "table")
    assert grid.run_grid(a) == 0 and launched == []


def test_tuned_settings_are_read_back_as_written_and_a_hand_edit_of_one_half_is_refused(tmp_path):
    from gpa_titan.study.planner import MethodOutcome, PhaseRecord
    from gpa_titan.study.tuned import load_tuned_settings, tuned_settings, write_tuned_settings

    spec = StudySpec.from_dict(spec_dict())
    chosen = {"lr": 0.016, "beta1": 0.8, "beta2": 0.99, "mu_y": 0.2, "H": 10}
    record = PhaseRecord("GPA-AdamW", "lr", {}, [], chosen, 3.0)
    outcome = MethodOutcome("GPA-AdamW", chosen, [record], {}, [])
    tuned = tuned_settings(spec, "spec.json", "/data/peps/", "the tuning split", {"GPA-AdamW": outcome})
    path = str(tmp_path / "tuned.json")
    write_tuned_settings(path, tuned)
    assert load_tuned_settings(path) == json.loads(json.dumps(tuned))
    entry = tuned["methods"]["GPA-AdamW"]
    assert entry["optimizer"] == optimizer_fields("GPA-AdamW", chosen, spec.setup) and entry["tuning_loss"] == 3.0
    assert tuned["data"] == "peps" and entry["H"].startswith("10 (paper-eq.")
    entry["optimizer"]["mu_y"] = 0.9  # the values edited, the knobs not
    write_tuned_settings(path, tuned)
    with pytest.raises(StudySpecError, match="GPA-AdamW's optimizer values .* do not match its knobs"):
        load_tuned_settings(path)


def test_a_study_of_some_optimizers_adds_them_to_the_tuned_file_of_its_study_and_refuses_another(tmp_path):
    """``--study --optimizers Muon`` on a study whose tuned file has the other optimizers keeps their
    entries and adds Muon's; a file of another study, setup, data or seeds is refused before any run."""
    from gpa_titan.study.planner import MethodOutcome, PhaseRecord
    from gpa_titan.study.tuned import (
        extendable_settings,
        load_tuned_settings,
        tuned_settings,
        with_kept_methods,
        write_tuned_settings,
    )

    muon_start = {"lr": 0.004, "beta1": 0.8, "beta2": 0.95, "momentum": 0.95}
    spec = StudySpec.from_dict(spec_dict(**{"GPA-AdamW": {"start": dict(GPA_START), "phases": []},
                                            "Muon": {"start": muon_start, "phases": []}}))
    order = [m.name for m in spec.methods]

    def outcome(name, chosen):
        return MethodOutcome(name, chosen, [PhaseRecord(name, "lr", {}, [], chosen, 3.0)], {}, [])

    path = str(tmp_path / "tuned.json")
    assert extendable_settings(path, spec, "/data/peps", ["Muon"]) is None  # no file yet: written as it comes
    first = tuned_settings(spec, "spec.json", "/data/peps", "split", {"GPA-AdamW": outcome("GPA-AdamW", GPA_START)})
    write_tuned_settings(path, first)
    existing = extendable_settings(path, spec, "/data/peps/", ["Muon"])
    second = tuned_settings(spec, "spec.json", "/data/peps", "split", {"Muon": outcome("Muon", muon_start)})
    merged = with_kept_methods(second, existing, order)
    assert list(merged["methods"]) == ["GPA-AdamW", "Muon"]
    assert merged["methods"]["GPA-AdamW"] == first["methods"]["GPA-AdamW"]
    write_tuned_settings(path, merged)
    assert load_tuned_settings(path)["methods"]["Muon"]["knobs"] == muon_start
    rerun = with_kept_methods(tuned_settings(spec, "spec.json", "/data/peps", "split",
                                             {"GPA-AdamW": outcome("GPA-AdamW", GPA_START | {"lr": 0.016})}),
                              load_tuned_settings(path), order)
    assert rerun["methods"]["GPA-AdamW"]["knobs"]["lr"] == 0.016 and "Muon" in rerun["methods"]  # replaced, kept
    for other, key in ((StudySpec.from_dict(spec_dict() | {"name": "other"}), "study"),
                       (StudySpec.from_dict(spec_dict() | {"setup": {"steps": 200, "val_every": 10}}), "setup"),
                       (StudySpec.from_dict(spec_dict() | {"final": {"seeds": [0]}}), "final_seeds"),
                       (spec, "data")):
        with pytest.raises(StudySpecError, match=f"tuned.json: its {key} .* give another --tuned file"):
            extendable_settings(path, other, "/data/other" if key == "data" else "/data/peps", ["Muon"])


def test_the_shared_grid_runs_muon_with_the_studys_fixed_choices_and_the_others_as_before():
    from types import SimpleNamespace

    a = SimpleNamespace(mu=0.9, mu_y=0.9, outer_lr=0.75)
    assert grid.grid_fields(a, "Muon", None, 3e-3) == {"name": "Muon", "lr": 3e-3, "beta1": 0.9, "beta2": 0.95,
                                                       "weight_decay": 0.1, "adjust_lr_fn": "match_rms_adamw"}
    assert grid.grid_fields(a, "GPA-Muon", 4, 3e-3)["adjust_lr_fn"] == "match_rms_adamw"
    assert grid.grid_fields(a, "ScheduleFree-AdamW", None, 3e-3) == {  # warmup_steps: fixed at its default
        "name": "ScheduleFree-AdamW", "lr": 3e-3, "beta1": 0.9, "beta2": 0.95, "weight_decay": 0.1}
