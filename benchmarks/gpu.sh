#!/usr/bin/env bash
# The GPU check in one command (benchmarks/gpu_check.py; BENCHMARKS.md, "The GPU check"): on a
# lent H100/H200, `depthbench train` of every model end to end, `depthbench run` with --jobs 1
# against --jobs auto, the numerical checks, and the preset grids' projected wall time, as
# Markdown and JSON tables in $OUT, rewritten after every row.
#
#   bash benchmarks/gpu.sh --wheels .whl --phases a                     # first command (420 s)
#   bash benchmarks/gpu.sh --wheels .whl --phases b,c,a,d --time-limit 210 \
#        --merge .gpu-check/gpu_check.json                               # second command
#   bash benchmarks/gpu.sh --dry-run                                     # a CPU: tiny sizes
#
# Options of this script (the others go to `python -m benchmarks.gpu_check`):
#   --wheels DIR      install DIR/*.whl (benchmarks/device-wheels.txt, `make device-wheels`) with
#                     pip --no-index --target SITE and put SITE on PYTHONPATH: the packages the
#                     GPU machine's image lacks
#   --site DIR        where they go (default /tmp/depthbench-site)
#   --time-limit S    the check stops starting runs S-20 s in and is stopped (SIGINT, then
#                     SIGKILL 20 s later) at S s, its tables kept (default 420; env GPU_CHECK_TIME_LIMIT)
# Python: $PYTHON, else .venv/bin/python, else python3 (the GPU machine's). Exit status: the
# check's (0 all phases ran, 1 a phase failed, 3 or 124 cut short by the time limit); 1 when no
# NVIDIA GPU is visible, unless --dry-run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PY="${PYTHON:-}"
if [[ -z "$PY" ]]; then
  if [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi
fi
wheels="" site=/tmp/depthbench-site limit="${GPU_CHECK_TIME_LIMIT:-420}" dry=0 rest=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --wheels) wheels="$2"; shift 2 ;;
    --site) site="$2"; shift 2 ;;
    --time-limit) limit="$2"; shift 2 ;;
    --dry-run|--quick) dry=1; rest+=("$1"); shift ;;
    *) rest+=("$1"); shift ;;
  esac
done

if [[ $dry == 0 ]]; then
  if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "gpu.sh: no NVIDIA GPU visible (nvidia-smi missing or failing); run it on the GPU" \
         "machine, or pass --dry-run to check it on a CPU" >&2
    exit 1
  fi
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
fi
if [[ -n "$wheels" ]]; then
  shopt -s nullglob
  files=("$wheels"/*.whl)
  if [[ ${#files[@]} == 0 ]]; then
    echo "gpu.sh: --wheels $wheels: no .whl files there; fetch them with \`make device-wheels\`" \
         "and carry that folder" >&2
    exit 1
  fi
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$site" "${files[@]}"
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
# works from a plain checkout too (no editable install needed)
export PYTHONPATH="$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if ! missing=$("$PY" -c "import importlib.util as u, pydantic, submitit, depthbench
assert u.find_spec('pytorch_grad_cam'), 'No module named pytorch_grad_cam'" 2>&1); then
  echo "gpu.sh: depthbench does not import with $PY (${missing##*$'\n'}); on the GPU machine" \
       "carry the wheels (make device-wheels) and pass --wheels .whl" >&2
  exit 1
fi
echo "# benchmarks/gpu.sh ${rest[*]:-}  ($(date -u +%Y-%m-%dT%H:%M:%SZ), git $(git rev-parse --short HEAD 2>/dev/null || echo '?'), limit ${limit} s)"
rc=0
timeout --signal=INT --kill-after=20 "$limit" \
  "$PY" -m benchmarks.gpu_check --deadline-s "$((limit > 40 ? limit - 20 : limit / 2))" \
  ${rest[@]+"${rest[@]}"} || rc=$?
if [[ $rc == 124 || $rc == 3 ]]; then
  echo "gpu.sh: cut short by the ${limit} s limit; the tables hold every row finished" >&2
fi
exit $rc
