#!/usr/bin/env bash
# Train on one node with torchrun.
#   NGPU=8 CONFIG_FILE=configs/llama_160m_gpa.toml bash scripts/run_train.sh [--section.key value ...]
# NGPU (default 8): processes on this node (GPUs, or CPU ranks where there is none).
# LOG_RANK (default 0): comma-separated ranks whose output is shown.
# PYTHON (default .venv/bin/python if present, else python).
set -euo pipefail
cd "$(dirname "$0")/.."
NGPU=${NGPU:-8}
LOG_RANK=${LOG_RANK:-0}
CONFIG_FILE=${CONFIG_FILE:?set CONFIG_FILE, e.g. CONFIG_FILE=configs/llama_160m_gpa.toml}
if [ ! -f "$CONFIG_FILE" ]; then
  echo "run_train.sh: CONFIG_FILE=$CONFIG_FILE does not exist (see configs/)" >&2
  exit 2
fi
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python; fi
fi
exec "$PYTHON" -m torch.distributed.run \
  --nproc_per_node="$NGPU" --rdzv_backend=c10d --rdzv_endpoint=localhost:0 \
  --local-ranks-filter "$LOG_RANK" --role rank --tee 3 \
  -m gpa_titan.train --job.config_file "$CONFIG_FILE" "$@"
