# The README's two commands:  `make demo`  (set up + main demo)  and  `make test`  (set up + lint + tests).
# Setup makes .venv with the host tools; torch/torchvision are pinned by constraints.txt to a matching pair.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.edgekit-installed

.PHONY: setup demo test lint pytest browser clean

setup: $(STAMP)

$(STAMP): setup.cfg pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[export,eval,dev]"
	touch $(STAMP)

demo: setup
	YOLO_OFFLINE=1 $(BIN)/edgekit demo

lint: setup
	$(BIN)/ruff check edgekit tests benchmarks
	# device-side code must run on Python 3.8 (JetPack 5); host-only code (edgekit/host) may use newer Python
	$(BIN)/vermin -q --no-tips --violations --eval-annotations -t=3.8- --exclude-regex '^edgekit/host/' edgekit

# The web page test drives Debian's Chromium; install it when we may (root + apt), else it is skipped.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "note: install chromium to run the web page test (skipped without it)"; fi; }

pytest: setup
	$(BIN)/python -m pytest

test: lint browser pytest

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
