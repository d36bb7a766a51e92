#!/usr/bin/env bash
# The one command for a GPU machine (a Jetson, a desktop, the lent device with the TensorRT 8.5 kit):
#   bash jetson/gpu-check.sh [--budget SECONDS] [--out DIR]        (or: make gpu-check)
# Builds FP16, calibrated INT8 and Q/DQ INT8 engines of the trained YOLOv8n (160 px, --fast-build, reused with
# --if-changed) and runs the gpu tests on them, each step with its own timeout, all within the budget (450 s);
# writes results.json (device, driver, TensorRT, per-step and per-test seconds, bench rows) and gpu-check.log.
# Needs the host-built assets: make gpu-assets (on the host), then EDGEKIT_GPU_ASSETS=DIR or ./gpu-assets.
# Python: $EDGEKIT_PYTHON, else the kit's $PY39 (. /tmp/k/env.sh), else python3. See jetson/gpu_check.py.
set -u
cd "$(dirname "$0")/.."
exec "${EDGEKIT_PYTHON:-${PY39:-python3}}" jetson/gpu_check.py "$@"
