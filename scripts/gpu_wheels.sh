#!/usr/bin/env bash
# Download the wheels that a GPU machine with torch and triton (and the usual scientific
# Python stack) but no TorchTitan needs to run scripts/gpu_check.sh, for its Python:
#   bash scripts/gpu_wheels.sh                  # into .whl/ (git-ignored), for CPython 3.12
#   WHEEL_DIR=wheels PY_VERSION=3.11 bash scripts/gpu_wheels.sh
# then, on that machine (no network needed): bash scripts/gpu_check.sh --wheels .whl
#
# Exactly these, pure-Python, each without its dependencies (--no-deps), about 1.5 MB:
#   torchtitan 0.2.2 (the engine), torchdata 0.11.0 (its stateful dataloader), tyro 1.0.17 with
#   docstring-parser 0.18.0 and typeguard 4.6.1 (its config parser), datasets 5.2.0 with dill
#   0.4.1 and multiprocess 0.70.19 (imported by TorchTitan's Llama 3 module).
# Everything else they import is taken from the machine: torch, triton, numpy, tokenizers,
# tensorboard, fsspec, einops, pyarrow, pandas, huggingface-hub, xxhash, requests, pyyaml, tqdm,
# pytest (the NVIDIA H100/H200 images of this workplace have them all). wandb, torchao and
# schedulefree are not needed: the GPU tests and checks never import them.
set -euo pipefail
cd "$(dirname "$0")/.."
WHEEL_DIR=${WHEEL_DIR:-.whl}
PY_VERSION=${PY_VERSION:-3.12}
WHEELS=(
  torchtitan==0.2.2 torchdata==0.11.0
  tyro==1.0.17 docstring-parser==0.18.0 typeguard==4.6.1
  datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19
)
mkdir -p "$WHEEL_DIR"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PY_VERSION" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform any \
  -d "$WHEEL_DIR" "${WHEELS[@]}"
echo "gpu_wheels.sh: ${#WHEELS[@]} wheels in $WHEEL_DIR ($(du -sh "$WHEEL_DIR" | cut -f1)); on the GPU machine: bash scripts/gpu_check.sh --wheels $WHEEL_DIR"
