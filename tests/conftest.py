"""Fixtures shared by tests/unit and tests/integration (helpers live in tests/helpers.py).

Without a CUDA device, Triton kernels run in Triton's interpreter on CPU tensors (set here,
before anything imports triton), so CI tests the GPU kernel itself. Tests marked ``gpu``
need a CUDA device and are skipped without one (``pytest -m gpu`` runs them).
"""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

from gpa_titan.data.demo import build_demo_assets  # noqa: E402
from helpers import QuadraticProblem  # noqa: E402


@pytest.fixture(scope="session")
def demo_assets(tmp_path_factory) -> str:
    """The generated demo corpus and tokenizer, built once per test session."""
    return build_demo_assets(str(tmp_path_factory.mktemp("demo_assets")))


@pytest.fixture
def problem() -> QuadraticProblem:
    return QuadraticProblem(steps=120)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (run on a GPU machine: scripts/gpu_check.sh)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
