# `make demo` trains the quickstart model; `make test` runs the fast test tier (a few minutes),
# `make test-slow` the process-heavy tier (torchrun, kill -9, the browser, API fuzzing; it lists its 12 slowest) and
# `make test-avx2` the whole suite on the kernels of an AVX2-only CPU (what CI runs after both);
# `make lint` checks src/ with ruff (lint and format) and mypy (settings in pyproject.toml), what CI runs first.
# Each creates .venv (with genlab and its dependencies) the first time.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# PyTorch, oneDNN and MKL limited to AVX2: an AVX-512 or AMX machine then runs an older CPU's kernels,
# so a test that holds only on one instruction set fails here as it would there.
AVX2_ONLY := ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2

.PHONY: demo lint test test-slow test-avx2

$(BIN)/genlab: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

demo: $(BIN)/genlab
	$(BIN)/genlab train configs/quickstart.yaml

lint: $(BIN)/genlab
	$(BIN)/ruff check src
	$(BIN)/ruff format --check src
	$(BIN)/mypy

test: $(BIN)/genlab
	$(BIN)/python -m pytest -q -m "not slow"

test-slow: $(BIN)/genlab
	$(BIN)/python -m pytest -q -m slow --durations=12

test-avx2: $(BIN)/genlab
	$(AVX2_ONLY) $(BIN)/python -m pytest -q
