#!/usr/bin/env bash
# GPU check (benchmarks/gpu_check.py): on a machine with CUDA GPUs, from the repository root,
#   bash benchmarks/gpu_check.sh [OUT]        # OUT defaults to runs/gpu_check
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[[ -x "$PY" ]] || PY=python
exec "$PY" benchmarks/gpu_check.py --out "${1:-runs/gpu_check}"
