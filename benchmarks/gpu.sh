#!/usr/bin/env bash
# The GPU plan in one command, on one H100/H200 (<= 5 minutes): every model's training throughput
# at 224 px in bf16 with channels_last (and torch.compile for ResNet-50 and Swin-T), the loader at
# that rate, and the projected wall time of `depthbench run --preset paper`, as a Markdown table.
#
#   benchmarks/gpu.sh                      # on the GPU machine, from anywhere in the repository
#   benchmarks/gpu.sh --dry-run            # on a CPU: tiny sizes, checks that the script works
#   benchmarks/gpu.sh --compile-models all # extra arguments go to `python -m benchmarks.gpu_plan`
#
# Fails loudly (exit 1) when no NVIDIA GPU is visible, unless --dry-run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PY="${PYTHON:-}"
if [[ -z "$PY" ]]; then
  if [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi
fi
# works from a plain checkout too (no editable install needed)
export PYTHONPATH="$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}"

dry=0
for a in "$@"; do [[ "$a" == "--dry-run" || "$a" == "--quick" ]] && dry=1; done
if [[ $dry == 0 ]]; then
  if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "gpu.sh: no NVIDIA GPU visible (nvidia-smi missing or failing); run it on the GPU" \
         "machine, or pass --dry-run to check it on a CPU" >&2
    exit 1
  fi
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
fi
echo "# benchmarks/gpu.sh $*  ($(date -u +%Y-%m-%dT%H:%M:%SZ), git $(git rev-parse --short HEAD 2>/dev/null || echo '?'))"
exec timeout --signal=INT --kill-after=15 "${GPU_PLAN_TIMEOUT:-300}" "$PY" -m benchmarks.gpu_plan "$@"
