# `make demo` trains the quickstart model; `make test` runs the test suite.
# Both create .venv (with genlab and its dependencies) the first time.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test

$(BIN)/genlab: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

demo: $(BIN)/genlab
	$(BIN)/genlab train configs/quickstart.yaml

test: $(BIN)/genlab
	$(BIN)/python -m pytest -q
