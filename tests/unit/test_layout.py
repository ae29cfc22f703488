"""The package's boundaries: optimizers, data and analysis never import TorchTitan; scripts
use the installed package rather than editing sys.path; one version string."""

import ast
import glob
import os
import tomllib

import pytest

import gpa_titan
from helpers import REPO

PLAIN = ("optim", "data", "analysis")  # no TorchTitan below these


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


def test_the_check_sees_an_import():
    assert "torchtitan.train" in imported_modules(os.path.join(REPO, "gpa_titan", "titan", "main.py"))


def test_top_level_holds_only_the_layers():
    top = sorted(os.path.basename(p) for p in glob.glob(os.path.join(REPO, "gpa_titan", "*.py")))
    assert top == ["__init__.py", "paths.py", "train.py"]


def test_scripts_do_not_edit_sys_path():
    for path in glob.glob(os.path.join(REPO, "scripts", "*.py")):
        assert "sys.path" not in open(path).read(), path


def test_one_version_string():
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    assert "version" not in project and project["dynamic"] == ["version"]
    assert gpa_titan.__version__
