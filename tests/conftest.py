"""Fixtures shared by tests/unit and tests/integration (helpers live in tests/helpers.py)."""

import pytest

from gpa_titan.data.demo import build_demo_assets
from helpers import QuadraticProblem


@pytest.fixture(scope="session")
def demo_assets(tmp_path_factory) -> str:
    """The generated demo corpus and tokenizer, built once per test session."""
    return build_demo_assets(str(tmp_path_factory.mktemp("demo_assets")))


@pytest.fixture
def problem() -> QuadraticProblem:
    return QuadraticProblem(steps=120)
