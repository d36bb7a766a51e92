# The README's two commands:  `make demo`  (set up + main demo)  and  `make test`  (set up + lint + tests).
# Setup makes .venv with the host tools; torch/torchvision are pinned by constraints.txt to a matching pair.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.edgekit-installed

.PHONY: setup demo test lint typecheck pytest sysdeps clean gpu-assets gpu-check gpu-kit clients-venv docs docs-serve

setup: $(STAMP)

$(STAMP): setup.cfg pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[export,eval,dev,serve,track,metrics,docs]"
	touch $(STAMP)

demo: setup
	YOLO_OFFLINE=1 $(BIN)/edgekit demo

lint: setup typecheck
	$(BIN)/ruff check edgekit tests benchmarks jetson docs/hooks
	# device-side code must run on Python 3.8 (JetPack 5); host-only code (edgekit/host) may use newer Python;
	# the GPU check's scripts run on the device too
	$(BIN)/vermin -q --no-tips --violations --eval-annotations -t=3.8- --exclude-regex '^edgekit/host/' edgekit \
	  jetson/gpu_check.py jetson/gpu_probe.py jetson/gpu_report.py tests/gpu_assets.py
	bash -n jetson/setup.sh jetson/gpu-check.sh
	$(BIN)/ansible-lint --offline -q jetson/ansible

# TensorRT/pycuda code is type-checked against NVIDIA's TensorRT 10 API (tensorrt-stubs) without a GPU. The stubs
# go into their own folder: installed beside the real packages they would shadow a missing `tensorrt` (a
# namespace package that imports but has no Builder). Their generated .pyi has two kinds of lines Python cannot
# parse (a parameter named `in`; a parameter without default after defaults): fixed by sed.
TYPING := .typing
$(TYPING)/.stamp: $(STAMP)
	rm -rf $(TYPING)
	$(BIN)/python -m pip install --quiet --no-deps --target $(TYPING) tensorrt-stubs==10.13.0.35.1
	sed -i -E 's/([(,] ?)in: /\1in_: /g; s/, channel_axis: int\)/, channel_axis: int = ...)/' \
	  $(TYPING)/tensorrt_bindings/tensorrt.pyi
	touch $@

typecheck: setup $(TYPING)/.stamp
	MYPYPATH=$(TYPING) $(BIN)/mypy edgekit/runtime

# The web page test drives Debian's Chromium; the fleet test reaches a second "box" over a loopback sshd.
# Install them when we may (root + apt), else those parts are skipped.
sysdeps:
	@{ command -v chromium && test -x /usr/sbin/sshd && command -v prometheus; } >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && apt-get install -y -qq chromium openssh-server >/dev/null && \
	    apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
	  else echo "note: install chromium, openssh-server and prometheus to run the web page, SSH fleet and scrape tests"; fi; }

# Roboflow's own client (inference-sdk) in a venv of its own, as a separate application would have it: it pins its
# own numpy and OpenCV. tests/test_roboflow.py runs it against a real edgekit serve; under make it must be there.
CLIENTS_SDK := 1.8.3
CLIENTS := .venv-clients/.inference-sdk-$(CLIENTS_SDK)
$(CLIENTS):
	rm -rf .venv-clients
	$(PYTHON) -m venv .venv-clients
	.venv-clients/bin/python -m pip install --quiet inference-sdk==$(CLIENTS_SDK)
	touch $@

clients-venv: $(CLIENTS)

pytest: setup $(CLIENTS)
	EDGEKIT_REQUIRE_CLIENTS=1 EDGEKIT_REQUIRE_DOCS=1 $(BIN)/python -m pytest

test: lint sysdeps pytest

# The documentation site (mkdocs + mkdocs-material, mkdocs.yml): built into site/, opened from the disk
# (site/index.html) or served at http://127.0.0.1:8000 by docs-serve. make test builds it with --strict too
# (tests/test_docs.py). NO_MKDOCS_2_WARNING: mkdocs-material's banner about a future MkDocs 2.0 (this pins mkdocs<2).
docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict
	@echo "open site/index.html"

docs-serve: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

# The GPU check (docs/results/gpu.md). Its assets are made here on the host (torch, ~20 s once the
# test fixture is cached): the trained YOLOv8n ONNX, its Q/DQ and letterbox+NMS twins, the trained YOLO26n's
# end-to-end ONNX and frames, into gpu-assets/ (git-ignored, 50 MB).
# The check itself runs on any machine with an NVIDIA GPU and TensorRT, with no torch and no .venv there.
gpu-assets: setup
	YOLO_OFFLINE=1 $(BIN)/python jetson/gpu-assets.py $(ARGS)

gpu-check:
	bash jetson/gpu-check.sh $(ARGS)

# The TensorRT 8.5 kit for a lent GPU machine that has no TensorRT (../shared/device beside the checkout, for this
# project's sessions: docs/contributing/testing.md), into .device/: the kit's own test dependencies (its default
# list) plus what lets the check serve a real engine (the serve extra), gate it (pycocotools) and read its power
# (NVML), all for Python 3.9. Not supervision (edgekit[track]): it pulls opencv-python, whose cv2 would shadow the
# kit's headless OpenCV and needs libGL, which the bare machine lacks.
GPU_KIT = ../shared/device/trt85
GPU_KIT_EXTRA = pytest exceptiongroup tomli click rich pyyaml onnx onnxruntime opencv-python-headless cuda-python<13 \
	starlette uvicorn httpx python-multipart prometheus_client pillow httptools uvloop pycocotools nvidia-ml-py
gpu-kit:
	@test -x $(GPU_KIT) || { echo "gpu-kit: $(GPU_KIT) not found: give the device kit's script, make gpu-kit GPU_KIT=/path/to/trt85" >&2; exit 2; }
	EDGEKIT_KIT_EXTRA="$(GPU_KIT_EXTRA)" $(GPU_KIT) prepare

clean:
	rm -rf $(VENV) $(TYPING) .venv-clients .pytest_cache .ruff_cache .mypy_cache *.egg-info site
