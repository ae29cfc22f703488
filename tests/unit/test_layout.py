"""The package's boundaries: optimizers, data, analysis, the study and the run keys never import
TorchTitan; the training layer (titan/) never imports offline code (analysis, study, tools) and
the offline tools never import the training loop; scripts use the installed package rather than
editing sys.path; one version string."""

import ast
import glob
import os
import tomllib

import pytest

import gpa_titan
from helpers import REPO

PLAIN = ("optim", "data", "analysis", "study")  # no TorchTitan below these


def imported_modules(path: str) -> set[str]:
    tree = ast.parse(open(path).read(), path)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", PLAIN)
def test_plain_packages_do_not_import_torchtitan(package):
    files = glob.glob(os.path.join(REPO, "gpa_titan", package, "**", "*.py"), recursive=True)
    assert files
    for path in files:
        bad = {m for m in imported_modules(path) if m.split(".")[0] == "torchtitan" or m.startswith("gpa_titan.titan")}
        assert not bad, f"{os.path.relpath(path, REPO)} imports {sorted(bad)}"


def test_the_neutral_run_keys_import_no_torchtitan_and_no_torch():
    bad = {m for m in imported_modules(os.path.join(REPO, "gpa_titan", "runs.py"))
           if m.split(".")[0] in ("torch", "torchtitan") or m.startswith(("gpa_titan.titan", "gpa_titan.analysis"))}
    assert not bad, f"gpa_titan/runs.py imports {sorted(bad)}"


def relative_imports(path: str) -> set[str]:
    """The modules ``path`` imports, relative imports resolved to ``gpa_titan.<...>`` names."""
    package = os.path.relpath(os.path.dirname(path), REPO).replace(os.sep, ".").split(".")
    names = set()
    for node in ast.walk(ast.parse(open(path).read(), path)):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - node.level + 1]
            names.add(".".join([*base, *([node.module] if node.module else [])]))
    return names | imported_modules(path)


OFFLINE = ("gpa_titan.analysis", "gpa_titan.study", "gpa_titan.tools")  # never imported by a training run
TRAINING_LOOP = tuple(f"gpa_titan.titan.{m}" for m in (
    "trainer", "main", "checkpoint", "preemption", "validation", "dataloader", "optimizer_container",
    "run_identity", "monitor", "start_checks", "settings_check")) + ("gpa_titan.train",)


def files_of(*parts: str) -> list[str]:
    files = glob.glob(os.path.join(REPO, "gpa_titan", *parts, "**", "*.py"), recursive=True)
    assert files, parts
    return files


def test_the_training_layer_imports_no_offline_code():
    """titan/ is what a training run imports: never the analysis of finished runs, the tuning
    study or the offline tools (it reads run keys from gpa_titan/runs.py)."""
    for path in files_of("titan"):
        bad = {m for m in relative_imports(path) if m.startswith(OFFLINE)}
        assert not bad, f"{os.path.relpath(path, REPO)} imports {sorted(bad)}: the training layer must not depend " \
                        "on offline code"


def test_offline_tools_do_not_import_the_training_loop():
    """tools/ may read TorchTitan's models and the train spec's builders, never the loop itself."""
    for path in files_of("tools"):
        bad = {m for m in relative_imports(path) if m.startswith(TRAINING_LOOP)}
        assert not bad, f"{os.path.relpath(path, REPO)} imports {sorted(bad)}"


def test_the_check_sees_an_import():
    assert "torchtitan.train" in imported_modules(os.path.join(REPO, "gpa_titan", "titan", "main.py"))
    assert "gpa_titan.titan.run_identity" in relative_imports(os.path.join(REPO, "gpa_titan", "titan", "trainer.py"))
    assert "gpa_titan.tools.paper_sizes" in relative_imports(os.path.join(REPO, "gpa_titan", "tools", "memory_plan.py"))


def test_top_level_holds_only_the_layers():
    top = sorted(os.path.basename(p) for p in glob.glob(os.path.join(REPO, "gpa_titan", "*.py")))
    assert top == ["__init__.py", "paths.py", "runs.py", "train.py"]


def test_scripts_do_not_edit_sys_path():
    for path in glob.glob(os.path.join(REPO, "scripts", "*.py")):
        assert "sys.path" not in open(path).read(), path


def test_one_version_string():
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    assert "version" not in project and project["dynamic"] == ["version"]
    assert gpa_titan.__version__
