# depthbench: `make run` runs the main job on the bundled data, `make test` runs the whole suite.
# Both create .venv and install the project (editable, with dev extras) when needed.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup run test lint browser screenshot clean bench device-wheels slurm-up slurm-down test-cluster

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

run: setup
	$(VENV)/bin/depthbench run

# Headless Chromium renders the HTML report in tests (Debian package `chromium`).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian chromium for the report's browser test"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "warning: could not install chromium; browser tests will fail"; }

# Two pytest-xdist workers, each taking one test file at a time (a file's module fixtures are
# built once), in the order tests/conftest.py gives: the longest files first.
# `make test TEST_WORKERS=0` runs the suite in one process.
TEST_WORKERS ?= 2

test: setup browser
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

# The README's picture: the first screen (1280x900) of a study's report.html in headless Chromium,
# reduced to 256 colours so the PNG stays small. `make screenshot STUDY=runs/quick` after `make run`.
STUDY      ?= runs/quick
SCREENSHOT ?= docs/report.png

screenshot: setup browser
	@test -f $(STUDY)/report.html || { echo "no $(STUDY)/report.html: run the study first"; exit 2; }
	@profile=$$(mktemp -d) && trap 'rm -rf "$$profile"' EXIT && \
	  chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run \
	    --disable-background-networking --disable-component-update --disable-sync \
	    --user-data-dir="$$profile" --window-size=1280,900 --virtual-time-budget=5000 \
	    --screenshot=$(abspath $(SCREENSHOT)) file://$(abspath $(STUDY))/report.html 2>/dev/null
	$(PY) -c "import sys; from PIL import Image; p = sys.argv[1]; \
	  Image.open(p).convert('RGB').quantize(256, dither=Image.Dither.NONE).save(p, optimize=True)" \
	  $(SCREENSHOT)
	@ls -l $(SCREENSHOT)

# A single-node SLURM (munged, MariaDB + slurmdbd for sacct, slurmctld, slurmd) under
# /tmp/depthbench-slurm, for the cluster tests; installs its Debian packages when missing (root).
SLURM_SH := tests/cluster/slurm.sh

slurm-up:
	@$(SLURM_SH) up

slurm-down:
	@$(SLURM_SH) down

# `--executor slurm` against that SLURM (tests/cluster, marker `cluster`; not part of `make test`).
test-cluster: setup slurm-up
	SLURM_CONF=$$($(SLURM_SH) conf) nice -n 10 $(PY) -m pytest -q -m cluster tests/cluster

# ruff, then the layer contract (.importlinter; tests/test_architecture.py runs it in the suite too)
lint: setup
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/lint-imports --no-cache

bench: setup
	$(PY) -m benchmarks

# The wheels the GPU check carries to a GPU machine (benchmarks/device-wheels.txt) into .whl/,
# checked against pyproject.toml, for a GPU machine without a package index (`benchmarks/gpu.sh --wheels`).
device-wheels: setup
	$(PY) -m benchmarks.device_wheels

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
