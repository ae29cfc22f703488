#!/usr/bin/env bash
# The one command to trust a new GPU machine (one node, all its visible GPUs):
#   bash scripts/gpu_check.sh                      # results under docs/results/gpu/<date>_<gpu>/
#   OUT_DIR=/tmp/check bash scripts/gpu_check.sh
# It runs, printing and saving each output:
#   1. nvidia-smi and the versions in use;
#   2. the GPU-marked tests (pytest -m gpu): the Triton GPA kernel against the float64 reference
#      on CUDA in fp32 and bf16, FSDP2 over all visible GPUs against one plain process, a
#      compiled bf16 training run;
#   3. scripts/bench_optimizer.py --device cuda on the 1.5B Llama-shaped set (one optimizer at a
#      time: step time, ratio to fused AdamW, state bytes/param, achieved bandwidth vs peak);
#   4. scripts/gpu_train_check.py: a short compiled bf16 run per optimizer (tokens/s and peak
#      memory next to AdamW's).
# Machines without internet: on a connected machine with the same Python, download the wheels
#   pip download -d wheels "torch==<your CUDA build>" -e ".[test]"   (or: pip download -d wheels -r <(pip freeze))
# copy the folder over, then install from it alone:
#   PIP_NO_INDEX=1 PIP_FIND_LINKS=$PWD/wheels TORCH_SPEC="torch==<version>" bash scripts/install.sh
# (pip reads PIP_NO_INDEX / PIP_FIND_LINKS itself; nothing here fetches anything else: the test
# and benchmark data are generated locally.)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=python3
if ! "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check.sh: no CUDA device visible to $PYTHON (torch.cuda.is_available() is False)" >&2
  exit 2
fi
gpu=$("$PYTHON" -c "import torch; print(torch.cuda.get_device_name(0))" | tr -c 'A-Za-z0-9.\n-' '_')
OUT_DIR=${OUT_DIR:-docs/results/gpu/$(date +%Y-%m-%d)_${gpu}}
mkdir -p "$OUT_DIR"
echo "gpu_check.sh: writing to $OUT_DIR"
status=0
{ nvidia-smi || true; "$PYTHON" -c "import torch, triton, torchtitan; print('torch', torch.__version__, 'cuda', torch.version.cuda, '| triton', triton.__version__, '| torchtitan', torchtitan.__version__, '| GPUs', torch.cuda.device_count())"; } 2>&1 | tee "$OUT_DIR/machine.txt"
"$PYTHON" -m pytest -q -m gpu tests 2>&1 | tee "$OUT_DIR/pytest_gpu.txt" || status=1
"$PYTHON" scripts/bench_optimizer.py --device cuda --dim 2048 --layers 16 --vocab 128256 2>&1 \
  | tee "$OUT_DIR/bench_optimizer.md" || status=1
"$PYTHON" scripts/gpu_train_check.py --out "runs/gpu_train_check" 2>&1 | tee "$OUT_DIR/train_check.md" || status=1
echo "gpu_check.sh: $([ $status = 0 ] && echo 'all checks passed' || echo 'SOME CHECKS FAILED') (outputs in $OUT_DIR)"
exit $status
