# Two entry points on a fresh machine: `make repro` and `make test`.
# Both create .venv first (only when it is missing or out of date); each target installs the pinned
# requirements of its use: requirements.txt (runtime: make repro), -test (make test, with -remote), -lint,
# -bench, -mutation.
# PYTHON picks the interpreter (`make test PYTHON=python3.12`); supported: SUPPORTED below. The version
# is checked before anything is installed, and .venv is rebuilt when it runs another interpreter.
PYTHON ?= python3
SUPPORTED := 3.11 3.12 3.13
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
# PYTHON is looked up on the caller's PATH (the one below starts with the venv, whose python3 is itself).
USER_PATH := $(PATH)
# dvc.yaml calls `python`: make it the venv's, whether or not the venv is activated.
export PATH := $(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1
# Values from the command line or the environment (PYTHON, BASE, LRS, JOBS, MODULES, MUTATION_ARGS,
# BENCH_ARGS, any text:
# a git ref may hold ` $ ; " ') reach the recipes only as environment variables taken verbatim
# ($(value ...): make expands nothing in them either), which the shell reads as "$$ARG_X": never as
# shell text, so no value can run a command. `unexport`: make would otherwise expand them to export them.
# Their defaults come first: `unexport` defines a variable it does not know yet (as empty), and `?=`
# would then keep it empty.
BASE ?= HEAD
LRS ?=
JOBS ?= 1
MODULES ?=
MUTATION_ARGS ?=
BENCH_ARGS ?=
unexport PYTHON BASE LRS JOBS MODULES MUTATION_ARGS BENCH_ARGS
export ARG_PYTHON = $(value PYTHON)
# One line naming an interpreter: "X.Y full-version installation-prefix" (Python 2 syntax too, so that any
# python can answer it); a venv answers with the prefix of the interpreter it was made from.
IDENTIFY := import sys; print("%d.%d %s %s" % (sys.version_info[0], sys.version_info[1], sys.version.split()[0], getattr(sys, "base_prefix", sys.prefix)))

.PHONY: venv repro test lint clean bench check-metrics sweep mutation FORCE

venv: $(VENV)/.installed

# What PYTHON says it is (empty when it does not run), asked when a recipe needs it; and the one line that
# stops make, by $(error): make then prints that line only ("Makefile:N: *** ...  Stop.", exit status 2),
# where a failing recipe would add its own "make: *** [...] Error 1".
PYTHON_FOUND = $(shell PATH="$(USER_PATH)" '$(subst ','\'',$(value PYTHON))' -c '$(IDENTIFY)' 2>/dev/null)
PYTHON_UNSUPPORTED = PYTHON=$(value PYTHON) $(if $(PYTHON_FOUND),is Python $(firstword $(PYTHON_FOUND)),is not a Python that runs); \
  supported: $(SUPPORTED), e.g. make test PYTHON=python3.12

# Runs every time: stop with one line unless PYTHON is a supported Python; (re)create .venv when it is
# missing, broken or made by another interpreter; rewrite .venv/.python (which interpreter) only when
# that changes, so that only then the requirements are installed again.
$(VENV)/.python: FORCE
	$(if $(filter $(firstword $(PYTHON_FOUND)),$(SUPPORTED)),,$(error $(PYTHON_UNSUPPORTED)))
	@want=$$(PATH="$(USER_PATH)" "$$ARG_PYTHON" -c '$(IDENTIFY)'); \
	have=$$("$(BIN)/python" -c '$(IDENTIFY)' 2>/dev/null || true); \
	if [ "$$have" != "$$want" ]; then \
	  if [ -e "$(VENV)" ]; then echo "rebuilding $(VENV): it runs '$${have:-nothing}', PYTHON=$$ARG_PYTHON is '$$want'"; fi; \
	  rm -rf "$(VENV)" && PATH="$(USER_PATH)" "$$ARG_PYTHON" -m venv "$(VENV)" || exit 1; \
	fi; \
	if [ "$$(cat "$@" 2>/dev/null)" != "$$want" ]; then echo "$$want" > "$@"; fi

$(VENV)/.installed: requirements.txt $(VENV)/.python
	"$(BIN)/python" -m pip install --quiet --upgrade pip
	"$(BIN)/python" -m pip install --quiet -r requirements.txt
	touch "$@"

# What the tests need on top of the runtime: pytest and friends, the remote plugins and servers.
$(VENV)/.test-installed: requirements-test.txt requirements-remote.txt $(VENV)/.installed
	"$(BIN)/python" -m pip install --quiet -r requirements-test.txt
	touch "$@"

$(VENV)/.lint-installed: requirements-lint.txt $(VENV)/.installed
	"$(BIN)/python" -m pip install --quiet -r requirements-lint.txt
	touch "$@"

$(VENV)/.bench-installed: requirements-bench.txt $(VENV)/.installed
	"$(BIN)/python" -m pip install --quiet -r requirements-bench.txt
	touch "$@"

repro: venv
	"$(BIN)/dvc" repro

test: venv $(VENV)/.test-installed
	"$(BIN)/python" -m pytest -n auto --dist loadfile tests

# Lint, format and type check (ruff and mypy; settings in pyproject.toml), and the GitHub workflows:
# zizmor's security audit (every persona's findings, offline; a file it cannot parse fails) and the GitHub
# workflow schema; all pinned in requirements-lint.txt. `ruff format .` and `ruff check --fix .` apply
# the first two; mypy must report no error.
lint: venv $(VENV)/.lint-installed
	"$(BIN)/ruff" check .
	"$(BIN)/ruff" format --check .
	"$(BIN)/mypy"
	"$(BIN)/zizmor" --offline --strict-collection --persona pedantic --quiet .github/workflows/
	"$(BIN)/check-jsonschema" --builtin-schema vendor.github-workflows .github/workflows/*.yml

# Benchmarks (bench/; scikit-learn, their baseline, is pinned in requirements-bench.txt); writes bench/RESULTS.md.
# BENCH_ARGS=--quick for a few-minute run with smaller sizes (writes bench/.cache/RESULTS-partial.md instead).

bench: export ARG_BENCH = $(value BENCH_ARGS)
bench: venv $(VENV)/.bench-installed
	set -f; "$(BIN)/python" -m bench.run_all $$ARG_BENCH

# Mutation testing (tools/mutation.py; not in CI: minutes per module), with its own pinned extras (mutmut);
# writes tests/mutation/REPORT.md. By default the modules whose code changed since their last run (or never
# run); MODULES="tools/check_metrics.py" for some modules, MUTATION_ARGS=--all for every one,
# MUTATION_ARGS="--max-children 1" for one mutant at a time.

$(VENV)/.mutation-installed: requirements-mutation.txt $(VENV)/.test-installed
	"$(BIN)/python" -m pip install --quiet -r requirements-mutation.txt
	touch "$@"

mutation: export ARG_MODULES = $(value MODULES)
mutation: export ARG_MUTATION_ARGS = $(value MUTATION_ARGS)
mutation: venv $(VENV)/.mutation-installed
	set -f; "$(BIN)/python" -m tools.mutation $$ARG_MUTATION_ARGS $$ARG_MODULES

clean:
	rm -rf data/raw data/prepared data/features dvc_plots

# The regression gate: workspace metrics against BASE (on a branch: `make check-metrics BASE=main`).
check-metrics: export ARG_BASE = $(value BASE)
check-metrics: venv
	"$(BIN)/python" -m tools.check_metrics --base="$$ARG_BASE" --report reports

# Learning-rate sweep on DVC's queue, e.g. `make sweep LRS="0.001 0.01"` (outputs in sweep/); JOBS=2 runs
# two experiments at a time with DVC's queue workers (same results).
sweep: export ARG_LRS = $(value LRS)
sweep: export ARG_JOBS = $(value JOBS)
sweep: venv
	set -f; "$(BIN)/python" -m tools.sweep --jobs "$$ARG_JOBS" $${ARG_LRS:+--lr $$ARG_LRS}
