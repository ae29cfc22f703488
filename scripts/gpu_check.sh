#!/usr/bin/env bash
# The one command to trust a GPU machine, sized for one 10-minute call (under 8 minutes wall on
# one H100/H200 in full, about 4 with --quick):
#   bash scripts/gpu_check.sh                         # results under docs/results/gpu/<date>_<gpu>/
#   bash scripts/gpu_check.sh --quick --out /tmp/check
#   bash scripts/gpu_check.sh --wheels .whl           # a machine without TorchTitan (see below)
#   bash scripts/gpu_check.sh --rehearse-on-cpu       # every stage at a toy size on CPU (CI runs it)
# Stages, each timed (stages.md) with its output saved in the results folder:
#   setup     TorchTitan and what it needs, installed from --wheels into a private folder when
#             `import torchtitan` fails (the wheels: scripts/gpu_wheels.sh says exactly which)
#   machine   nvidia-smi and the versions in use                                     machine.txt
#   build     the Triton kernel compiled for this GPU's architecture and checked
#             (python -m gpa_titan.optim.triton_build_check)                        build_check.md
#   tests     the GPU-marked tests (pytest -m gpu tests/integration/test_gpu.py)    pytest_gpu.txt
#   optimizer scripts/bench_optimizer.py on a Llama-shaped set: 1.5B parameters (--quick: 0.5B);
#             step time against fused AdamW, state bytes/param, bandwidth vs peak   bench_optimizer.md
#   training  scripts/gpu_train_check.py: the 160M flavor, compiled, bf16, on the generated demo
#             corpus: AdamW, GPA-AdamW, Muon, GPA-Muon, 40 steps (--quick:
#             AdamW and GPA-AdamW, 30 steps); tokens/s and peak memory vs AdamW   train_check.md
# Each stage has a time limit (STAGE_LIMITS below) so that one stuck stage cannot eat the call;
# a stage that fails or runs out is reported and the others still run. Exit 0 when all pass.
# How the stages were sized: docs/results/gpu/README.md.
set -uo pipefail
cd "$(dirname "$0")/.."
usage="usage: bash scripts/gpu_check.sh [--quick | --rehearse-on-cpu] [--out DIR] [--wheels DIR]"
quick=0 rehearse=0 out="" wheels=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --rehearse-on-cpu) rehearse=1 ;;
    --out) out=${2:?"$usage"}; shift ;;
    --wheels) wheels=${2:?"$usage"}; shift ;;
    -h|--help) echo "$usage"; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument '$1'; $usage" >&2; exit 2 ;;
  esac
  shift
done
PYTHON=${PYTHON:-.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=python3
if [ $rehearse = 0 ] && ! "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check.sh: no CUDA device visible to $PYTHON (torch.cuda.is_available() is False)" >&2
  exit 2
fi
# Limits in seconds: setup, machine, build, tests, optimizer, training (full; --quick below).
# They add up to 9 minutes (full) and 7 (--quick), so the call ends inside a 10-minute device call
# even if every stage runs out; the expected times are about half of each.
STAGE_LIMITS=(60 30 60 150 60 180)
[ $quick = 1 ] && STAGE_LIMITS=(60 30 60 120 40 110)

stage_names=(setup machine build tests optimizer training)
declare -a stage_seconds stage_status
begin=$SECONDS
run_stage() {  # run_stage INDEX OUTPUT_FILE COMMAND...: time-limited, tee'd, recorded
  local i=$1 file=$2; shift 2
  local start=$SECONDS
  echo "=== gpu_check.sh: stage ${stage_names[$i]} (limit ${STAGE_LIMITS[$i]} s)"
  timeout --signal=INT --kill-after=15 "${STAGE_LIMITS[$i]}" "$@" 2>&1 | tee "$file"
  local rc=${PIPESTATUS[0]}
  stage_seconds[$i]=$((SECONDS - start))
  case $rc in
    0) stage_status[$i]=ok ;;
    124|137) stage_status[$i]="OUT OF TIME (limit ${STAGE_LIMITS[$i]} s)" ;;
    *) stage_status[$i]="FAILED (exit $rc)" ;;
  esac
  echo "=== gpu_check.sh: stage ${stage_names[$i]}: ${stage_status[$i]} in ${stage_seconds[$i]} s"
}

# setup: TorchTitan from the wheels folder when the machine lacks it.
start=$SECONDS
if "$PYTHON" -c "import torchtitan" 2>/dev/null; then
  stage_status[0]="ok (TorchTitan already installed)"
else
  wheels=${wheels:-.whl}
  if ! ls "$wheels"/*.whl >/dev/null 2>&1; then
    echo "gpu_check.sh: TorchTitan is not installed and '$wheels' holds no wheels; on a machine with pip access run" \
      "'bash scripts/gpu_wheels.sh' (it writes .whl/), bring the folder along and pass --wheels .whl" >&2
    exit 2
  fi
  site=${GPA_SITE:-/tmp/gpa_titan_site}
  if ! "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
      "$wheels"/*.whl; then
    echo "gpu_check.sh: installing the wheels in '$wheels' into $site failed (see above)" >&2
    exit 2
  fi
  export PYTHONPATH="$site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
  stage_status[0]="ok (installed $(ls "$wheels"/*.whl | wc -l) wheels from $wheels)"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # gpa_titan from this checkout, installed or not
stage_seconds[0]=$((SECONDS - start))

mode=$([ $rehearse = 1 ] && echo "CPU rehearsal" || { [ $quick = 1 ] && echo quick || echo full; })
if [ $rehearse = 1 ]; then  # the same stages and scripts at toy sizes; the kernel is compiled for Hopper
  gpu=cpu-rehearsal arch=90 smi=true
  bench=(--device cpu --dim 256 --layers 2 --vocab 4096 --repeats 3)
  train=(--flavor debug --no-compile --steps 6 --seq-len 64 --batch 2 --warmup 2 --optimizers AdamW,GPA-AdamW)
else
  gpu=$("$PYTHON" -c "import torch; print(torch.cuda.get_device_name(0))" | tr -c 'A-Za-z0-9.\n-' '_')
  arch=$("$PYTHON" -c "import torch; m, n = torch.cuda.get_device_capability(0); print(10 * m + n)")
  smi=nvidia-smi
  if [ $quick = 1 ]; then
    bench=(--device cuda --dim 1024 --layers 16 --vocab 128256 --repeats 10)
    train=(--steps 30 --warmup 10 --optimizers AdamW,GPA-AdamW)
  else
    bench=(--device cuda --dim 2048 --layers 16 --vocab 128256)
    train=(--steps 40 --warmup 15 --optimizers AdamW,GPA-AdamW,Muon,GPA-Muon)
  fi
fi
out=${out:-docs/results/gpu/$(date +%Y-%m-%d)_${gpu}}
mkdir -p "$out"
echo "gpu_check.sh: writing to $out ($mode)"
export PYTHONUNBUFFERED=1 WANDB_MODE=offline
unset TRITON_INTERPRET

run_stage 1 "$out/machine.txt" bash -c "$smi; \"$PYTHON\" -c \"import torch, triton, torchtitan; \
print('torch', torch.__version__, 'cuda', torch.version.cuda, '| triton', triton.__version__, '| torchtitan', \
torchtitan.__version__, '| GPUs', torch.cuda.device_count(), '| sm', $arch)\""
run_stage 2 "$out/build_check.md" "$PYTHON" -m gpa_titan.optim.triton_build_check --arch "$arch"
run_stage 3 "$out/pytest_gpu.txt" "$PYTHON" -m pytest -q -m gpu -p no:cacheprovider tests/integration/test_gpu.py
run_stage 4 "$out/bench_optimizer.md" "$PYTHON" scripts/bench_optimizer.py "${bench[@]}"
run_stage 5 "$out/train_check.md" "$PYTHON" scripts/gpu_train_check.py --out "${GPU_RUNS:-runs/gpu_train_check}" \
  "${train[@]}"

failed=0
for i in "${!stage_names[@]}"; do
  case "${stage_status[$i]:-}" in ok*) ;; *) failed=1 ;; esac
done
{
  echo "# gpu_check.sh ($mode) on $gpu (kernel built for sm_$arch), $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "| stage | seconds | limit | result |"
  echo "|---|---:|---:|---|"
  for i in "${!stage_names[@]}"; do
    echo "| ${stage_names[$i]} | ${stage_seconds[$i]:-0} | ${STAGE_LIMITS[$i]} | ${stage_status[$i]:-not run} |"
  done
  echo "| all | $((SECONDS - begin)) | $(IFS=+; echo $((${STAGE_LIMITS[*]}))) | $([ $failed = 0 ] && echo ok || echo FAILED) |"
} | tee "$out/stages.md"
echo "gpu_check.sh: $([ $failed = 0 ] && echo 'all checks passed' || echo 'SOME CHECKS FAILED') (outputs in $out)"
exit $failed
