"""README tables that are program output match the program."""

import os
import re

from gpa_titan.titan.models import model_table
from helpers import REPO


def generated_block(name: str) -> str:
    text = open(os.path.join(REPO, "README.md")).read()
    match = re.search(rf"<!-- {name}: output of `([^`]+)` -->\n(.*?)\n<!-- /{name} -->", text, re.S)
    assert match, f"README.md has no <!-- {name} --> block"
    return match.group(2)


def test_model_table_is_the_output_of_scripts_model_table():
    assert generated_block("model-table") == model_table(), "run python scripts/model_table.py and paste its output"


def test_documented_optimizer_defaults_are_the_signatures():
    """The README's "arguments (defaults)" row states each optimizer's real defaults."""
    import inspect

    from gpa_titan.optim import DiLoCoAdamW, GPAAdamW, ScheduleFreeAdamW
    from gpa_titan.optim.gpa_muon import GPAMuon
    from gpa_titan.optim.muon import Muon

    text = open(os.path.join(REPO, "README.md")).read()
    row = next(line for line in text.splitlines() if line.startswith("| arguments (defaults) |"))
    cells = [c.strip().strip("`") for c in row.strip("|").split("|")[1:]]
    for cls, cell in zip((GPAAdamW, DiLoCoAdamW, ScheduleFreeAdamW, Muon, GPAMuon), cells, strict=True):
        documented = dict(re.findall(r"(\w+)=(\([^)]*\)|[^,]+)", cell))
        actual = {name: p.default for name, p in inspect.signature(cls).parameters.items() if name != "params"}
        assert set(documented) == set(actual), cls.__name__
        for name, value in actual.items():
            assert eval(documented[name]) == value, f"{cls.__name__} {name}: README {documented[name]} != {value!r}"


def test_reliability_table_names_real_tests_and_counts_its_rows():
    text = open(os.path.join(REPO, "README.md")).read()
    section = text[text.index("## Reliability"):text.index("## Layout")]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| bad input")]
    assert f"{len(rows)} cases" in section, "update the count of cases in the README's Reliability section"
    for row in rows:
        cell = row.rstrip(" |").rsplit(" | ", 1)[1]
        refs = re.findall(r"`(tests/[\w/]+\.py)?::(\w+)`", cell)
        assert refs, f"a case without a test: {row[:80]}"
        path = None
        for file, name in refs:
            path = file or path
            source = open(os.path.join(REPO, path)).read()
            assert re.search(rf"^def {name}\(", source, re.M), f"{path}::{name} does not exist"


def _committed(*parts: str) -> str:
    return open(os.path.join(REPO, *parts)).read()


def test_convergence_results_are_the_committed_study_output():
    """The README's result tables are copied from what the study and --confirm wrote."""
    assert generated_block("convergence-table") in _committed("docs", "results", "peps_confirm", "confirm.md")
    assert generated_block("mu-y-window-table") in _committed("docs", "results", "peps_study", "tuning_figure9.md")
    assert generated_block("muon-table2") in _committed("docs", "results", "peps_study_muon", "tuning_table2.md")
    assert generated_block("gpa-muon-window-table") in _committed("docs", "results", "peps_study_muon",
                                                                  "tuning_figure9_gpa_muon.md")


def test_demo_table_is_the_output_of_scripts_demo_curves():
    assert generated_block("demo-curves") in _committed("docs", "results", "demo_curves.md"), (
        "run python scripts/demo_curves.py and paste its table")


def test_the_generic_gpa_snippet_runs_as_written():
    """The README's GPA / GPAMuon example builds both optimizers and each takes a step."""
    import torch

    text = open(os.path.join(REPO, "README.md")).read()
    block = next(b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "GPAMuon(" in b)
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
    scope = {"torch": torch, "model": model}
    exec(block, scope)
    model(torch.randn(3, 4)).square().sum().backward()
    scope["opt"].step()  # the last one built: GPA-Muon
    assert type(scope["opt"]).__name__ == "GPAMuon" and scope["opt"].state[model[0].weight]["z"].shape == (4, 4)
