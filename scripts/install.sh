#!/usr/bin/env bash
# Creates .venv and installs torch, then this package with its test extra.
#   bash scripts/install.sh                       # CPU machine: torch 2.13.0 (CPU build here)
#   TORCH_SPEC="torch==2.11.0" bash scripts/install.sh   # a GPU cluster's CUDA build
# Torch goes in first so that installing the project never pulls a different torch build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q "$TORCH_SPEC"
.venv/bin/python -m pip install -q -e ".[test]"
.venv/bin/python -c "import torch, torchtitan, gpa_titan; print('installed: torch', torch.__version__, '| torchtitan', torchtitan.__version__, '| gpa_titan', gpa_titan.__version__)"
