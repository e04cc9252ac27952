# Two entry points on a fresh machine: `make repro` and `make test`.
# Both create .venv from the pinned requirements.txt first (only when it is missing or out of date).
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
# dvc.yaml calls `python`: make it the venv's, whether or not the venv is activated.
export PATH := $(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: venv repro test clean bench check-metrics sweep

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

repro: venv
	$(BIN)/dvc repro

test: venv
	$(BIN)/python -m pytest tests

# Benchmarks (bench/); writes bench/RESULTS.md. BENCH_ARGS=--quick for a few-minute run with smaller sizes.
BENCH_ARGS ?=

bench: venv
	$(BIN)/python -m bench.run_all $(BENCH_ARGS)

clean:
	rm -rf data/raw data/prepared data/features dvc_plots

# The regression gate: workspace metrics against BASE (on a branch: `make check-metrics BASE=main`).
BASE ?= HEAD
check-metrics: venv
	$(BIN)/python -m tools.check_metrics --base $(BASE) --report reports

# Learning-rate sweep on DVC's queue, e.g. `make sweep LRS="0.001 0.01"` (outputs in sweep/).
LRS ?=
sweep: venv
	$(BIN)/python -m tools.sweep $(if $(LRS),--lr $(LRS))
