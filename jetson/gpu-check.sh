#!/usr/bin/env bash
# The one command for a GPU machine (a Jetson, a desktop, the lent device with the TensorRT 8.5 kit):
#   bash jetson/gpu-check.sh [--budget SECONDS] [--out DIR] [--resume EARLIER_RESULTS_DIR]     (or: make gpu-check)
# Builds and checks, most informative first, FP16, Q/DQ INT8, in-graph letterbox + EfficientNMS_TRT (FP16) and
# calibrated INT8 engines of the trained YOLOv8n (160 px, --fast-build, reused with --if-changed), then, with the
# time left, the trained YOLO26n's end-to-end (TopK) head in FP16, each step with its own timeout within the
# budget (450 s); writes results.json, summary.md and gpu-check.log.
# Needs the host-built assets: make gpu-assets (on the host), then EDGEKIT_GPU_ASSETS=DIR or ./gpu-assets.
# Python: $EDGEKIT_PYTHON if set (refused in one line if it cannot start), else the first that starts of the
# TensorRT kit's $PY39, the kit unpacked at $EDGEKIT_KIT (default /tmp/k, its env.sh sourced), python3.
# See jetson/gpu_check.py.
set -u
cd "$(dirname "$0")/.."

why_not() {  # nothing when "$1" starts as a Python 3.8+, else the first line of what it said
  local out rc
  if ! command -v "$1" >/dev/null 2>&1; then
    echo "not found"
    return 1
  fi
  local err; err=$(mktemp)
  # stdout carries the answer; stderr (e.g. a loader's LD_PRELOAD warning) only the reason when there is none
  out=$("$1" -c 'import sys; print("python-ok") if sys.version_info >= (3, 8) else sys.exit("Python %d.%d is older than 3.8" % sys.version_info[:2])' 2>"$err" </dev/null)
  rc=$?
  [ "$rc" -eq 0 ] && [ "$out" = "python-ok" ] && { rm -f "$err"; return 0; }
  [ "$rc" -eq 0 ] && { rm -f "$err"; echo "not a Python (it ran, but did not run Python code)"; return 1; }
  out=$(printf '%s\n%s\n' "$out" "$(cat "$err")"); rm -f "$err"
  # the telling line: Python's "Fatal Python error: ..." (e.g. under another Python's PYTHONHOME), else the first
  out=$( { printf '%s\n' "$out" | grep -m1 -E 'Error|error|No such file'; printf '%s\n' "$out"; } | grep -v '^[[:space:]]*$' | head -1)
  case "$out" in
    *"Fatal Python error"*) echo "$out${PYTHONHOME:+ (with PYTHONHOME=$PYTHONHOME)}" ;;
    *) echo "${out:-exit status $rc}" ;;
  esac
}

if [ -n "${EDGEKIT_PYTHON:-}" ]; then
  reason=$(why_not "$EDGEKIT_PYTHON") || true
  if [ -n "$reason" ]; then
    echo "gpu-check: EDGEKIT_PYTHON=$EDGEKIT_PYTHON cannot start: $reason (point it at the Python that has TensorRT, e.g. . /tmp/k/env.sh sets it to the kit's)" >&2
    exit 2
  fi
  exec "$EDGEKIT_PYTHON" jetson/gpu_check.py "$@"
fi
kit=${EDGEKIT_KIT:-/tmp/k}
if [ -z "${PY39:-}" ] && [ -f "$kit/env.sh" ]; then
  . "$kit/env.sh"  # the TensorRT 8.5 kit (../shared/device): its Python needs its PYTHONHOME and libraries
fi
tried=""
for py in "${PY39:-}" python3; do
  [ -n "$py" ] || continue
  reason=$(why_not "$py") || true
  if [ -z "$reason" ]; then
    exec "$py" jetson/gpu_check.py "$@"
  fi
  tried="$tried; $py: $reason"
done
echo "gpu-check: no Python 3.8+ starts here (${tried#; }): set EDGEKIT_PYTHON to the Python that has TensorRT, or . /tmp/k/env.sh for the kit's" >&2
exit 2
