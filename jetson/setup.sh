#!/usr/bin/env bash
# Prepare a Jetson (JetPack 5.1 on Xavier NX, JetPack 6 on Orin) or a plain PC for edgekit. Idempotent: run it
# again after an upgrade; what is already right is left alone.
#
#   jetson/setup.sh [--check] [--pc] [--venv DIR] [--source SPEC] [--power-mode N] [--clocks]
#
#   --check          only check the prerequisites; change nothing
#   --pc             a plain PC: ONNX Runtime backend only (no TensorRT/pycuda checks)
#   --venv DIR       where edgekit goes (default ~/.edgekit/venv; on a Jetson it sees the system site-packages,
#                    where JetPack puts TensorRT's bindings and an OpenCV built with GStreamer)
#   --source SPEC    what pip installs: a checkout folder or a wheel of edgekit (default: the checkout this script
#                    is in; edgekit is not installed from PyPI, where the name belongs to another project)
#   --power-mode N   set nvpmodel mode N (e.g. 8 = 20W 6-core on Xavier NX) unless it is already set
#   --clocks         run jetson_clocks (max clocks until reboot) for benchmarks
#
# Exit codes: 0 ready, 2 bad usage, 3 a prerequisite is missing (the message says what to do).
# EDGEKIT_ROOT (default /) lets tests point the checks at a fake filesystem; PYTHON picks the interpreter.
set -euo pipefail

ROOT=${EDGEKIT_ROOT:-/}
PYTHON=${PYTHON:-python3}
VENV=${EDGEKIT_VENV:-$HOME/.edgekit/venv}
SOURCE=""
HERE=$(cd "$(dirname "$0")/.." && pwd)  # the checkout this script is in, when it is in one
CHECK_ONLY=0 PC=0 POWER_MODE="" CLOCKS=0

say()  { printf '%s\n' "$*"; }
ok()   { printf '  ok    %s\n' "$*"; }
note() { printf '  note  %s\n' "$*"; }
die()  { printf 'error: %s\n' "$1" >&2; exit "${2:-3}"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --check) CHECK_ONLY=1 ;;
    --pc) PC=1 ;;
    --venv) VENV=${2:?--venv needs a folder}; shift ;;
    --source) SOURCE=${2:?--source needs a pip spec}; shift ;;
    --power-mode) POWER_MODE=${2:?--power-mode needs a number}; shift ;;
    --clocks) CLOCKS=1 ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" 2 ;;
  esac
  shift
done
if [ -z "$SOURCE" ] && [ "$CHECK_ONLY" = 0 ]; then
  [ -f "$HERE/edgekit/__init__.py" ] || die "give --source: a wheel or a checkout folder of edgekit on this box (it is not installed from PyPI, where the name edgekit belongs to another project)" 2
  SOURCE=$HERE
fi

# --- what box is this ------------------------------------------------------------------------------------------
release_file="$ROOT/etc/nv_tegra_release"
if [ "$PC" = 0 ]; then
  [ -f "$release_file" ] || die "$release_file not found: this is not a Jetson (L4T). For a plain PC (ONNX Runtime only) run: $0 --pc"
  line=$(head -n 1 "$release_file")
  major=$(printf '%s' "$line" | sed -n 's/.*R\([0-9]*\) *(release).*/\1/p')
  revision=$(printf '%s' "$line" | sed -n 's/.*REVISION: *\([0-9.]*\).*/\1/p')
  [ -n "$major" ] || die "cannot read the L4T release from $release_file ('$line')"
  model=$(tr -d '\000' < "$ROOT/proc/device-tree/model" 2>/dev/null || echo "unknown Jetson")
  case "$major" in
    32) die "$model runs L4T R$major.$revision (JetPack 4: Python 3.6, TensorRT 8.2); edgekit needs JetPack 5.1+ (L4T R35) or JetPack 6 (R36): reflash with SDK Manager" ;;
    35|36)  # NVIDIA's published L4T -> JetPack pairs (as edgekit info reports them)
      case "$major.${revision%%.*}" in
        35.1) jetpack=5.0.2 ;; 35.2) jetpack=5.1 ;; 35.3) jetpack=5.1.1 ;; 35.4) jetpack=5.1.2 ;;
        35.5) jetpack=5.1.3 ;; 35.6) jetpack=5.1.4 ;; 36.2) jetpack="6.0 DP" ;; 36.3) jetpack=6.0 ;;
        36.4) jetpack="6.1/6.2" ;; *) jetpack="$((major - 30)).x" ;;
      esac ;;
    *) jetpack="unknown"; note "L4T R$major is newer than this script knows; going on" ;;
  esac
  ok "$model, L4T R$major.$revision (JetPack $jetpack)"
else
  ok "plain PC: ONNX Runtime backend (TensorRT and pycuda are not checked)"
fi

# --- Python, TensorRT, CUDA for pycuda ------------------------------------------------------------------------
command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found: install Python 3.8+ (JetPack ships /usr/bin/python3)"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 8))' \
  || die "$("$PYTHON" -V 2>&1) is too old: edgekit needs Python 3.8+"
ok "$("$PYTHON" -V 2>&1) ($PYTHON)"

if [ "$PC" = 0 ]; then
  trt=$("$PYTHON" -c 'import tensorrt; print(tensorrt.__version__)' 2>/dev/null) \
    || die "TensorRT's Python bindings are missing for $PYTHON: sudo apt install python3-libnvinfer (or the whole sudo apt install nvidia-jetpack); meanwhile run $0 --pc for the ONNX Runtime backend"
  ok "TensorRT $trt"
  if "$PYTHON" -c 'import pycuda' 2>/dev/null; then
    ok "pycuda already installed"
  else
    cuda="$ROOT/usr/local/cuda"
    [ -x "$cuda/bin/nvcc" ] && [ -f "$cuda/include/cuda.h" ] \
      || die "pycuda is built on the device and needs CUDA's compiler and headers in /usr/local/cuda (nvcc, include/cuda.h): sudo apt install nvidia-jetpack (or cuda-toolkit), then run this again"
    ok "CUDA toolkit at /usr/local/cuda (pycuda will build against it)"
  fi
  if "$PYTHON" -c 'import cv2, sys; sys.exit("GStreamer:                   YES" not in cv2.getBuildInformation())' 2>/dev/null; then
    ok "system OpenCV has GStreamer (CSI and RTSP cameras work); edgekit keeps it"
    system_cv2=1
  else
    note "no system OpenCV with GStreamer: CSI cameras (csi://) need JetPack's python3-opencv"
    system_cv2=0
  fi
fi

if [ "$CHECK_ONLY" = 1 ]; then
  say "checks passed; nothing changed (--check)"
  exit 0
fi

# --- install or upgrade edgekit ------------------------------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  if [ "$PC" = 0 ]; then "$PYTHON" -m venv --system-site-packages "$VENV"; else "$PYTHON" -m venv "$VENV"; fi
  ok "created $VENV"
fi
pip=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
installed=$("$VENV/bin/python" -I -c 'from importlib import metadata as m; print(m.version("edgekit"))' 2>/dev/null || true)
wanted=""
if [ -f "$SOURCE/edgekit/__init__.py" ]; then  # a checkout: compare versions instead of reinstalling
  wanted=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$SOURCE/edgekit/__init__.py")
fi
if [ -n "$installed" ] && [ "$installed" = "$wanted" ]; then
  ok "edgekit $installed already installed in $VENV"
elif [ "$PC" = 1 ]; then
  "${pip[@]}" install --upgrade "$SOURCE"
  ok "installed edgekit $("$VENV/bin/python" -I -c 'from importlib import metadata as m; print(m.version("edgekit"))')"
else
  # keep JetPack's numpy/OpenCV (pip's opencv-python has no GStreamer): edgekit without deps, then what is missing
  "${pip[@]}" install --upgrade --no-deps "$SOURCE"
  deps=("onnx>=1.12" "onnxruntime>=1.10" "click>=8.0" "rich>=12.0" "pycuda>=2021.1")
  "$VENV/bin/python" -c 'import numpy' 2>/dev/null || deps+=("numpy>=1.19")
  [ "$system_cv2" = 1 ] || deps+=("opencv-python>=4.5")
  PATH="/usr/local/cuda/bin:$PATH" CUDA_ROOT=/usr/local/cuda "${pip[@]}" install "${deps[@]}"
  ok "installed edgekit $("$VENV/bin/python" -I -c 'from importlib import metadata as m; print(m.version("edgekit"))') with the jetson extra"
fi

# --- power mode and clocks (benchmarks want them fixed) ------------------------------------------------------------
if [ -n "$POWER_MODE" ]; then
  command -v nvpmodel >/dev/null 2>&1 || die "nvpmodel not found (it comes with JetPack): cannot set --power-mode"
  current=$(nvpmodel -q 2>/dev/null | tail -n 1 | tr -d '[:space:]')
  if [ "$current" = "$POWER_MODE" ]; then ok "power mode already $POWER_MODE"
  else sudo nvpmodel -m "$POWER_MODE" && ok "power mode set to $POWER_MODE (was ${current:-unknown})"; fi
fi
if [ "$CLOCKS" = 1 ]; then
  command -v jetson_clocks >/dev/null 2>&1 || die "jetson_clocks not found (it comes with JetPack)"
  sudo jetson_clocks && ok "jetson_clocks: clocks at maximum until reboot"
fi

say "ready: $VENV/bin/edgekit (try: $VENV/bin/edgekit info)"
