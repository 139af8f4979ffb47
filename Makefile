# tap-cloudwatch-metrics: developer and demo commands.
#
#   make install   .venv with the project and its dev tools (pip install -e '.[dev]')
#   make demo      local CloudWatch (moto) + sample data + `meltano run tap-cloudwatch-metrics
#                  target-jsonl`; installs what it needs first (once: later runs skip it)
#   make test      the test suite
#   make lint      ruff check + ruff format --check
#   make demo-reset  forget the demo's Meltano state and output (next demo starts afresh)
#   make bench     the tap vs a minimal boto3 loop on a fake CloudWatch (minutes; BENCH_ARGS=...)
#   make e2e       Meltano end to end: target-jsonl (resumed from Meltano's state), target-duckdb
#                  and target-postgres (needs PostgreSQL: .ci/postgres sets one up)
#
# Installs are stamped: they rerun only when pyproject.toml (or meltano.yml) changes.

# python3.11 if it is there and runs, else python3 (pyenv shims can exist without working).
PYTHON ?= $(shell python3.11 -c 'import sys' >/dev/null 2>&1 && echo python3.11 || echo python3)
VENV := .venv
VENV_PY := $(VENV)/bin/python
MELTANO := $(VENV)/bin/meltano
# Stamps live inside the (git-ignored) folders they describe, so deleting one resets it.
DEV_STAMP := $(VENV)/.installed-dev
DEMO_STAMP := $(VENV)/.installed-demo
PLUGINS_STAMP := .meltano/.installed-demo-plugins

.DEFAULT_GOAL := help
.PHONY: help install demo demo-reset test lint

help:
	@sed -n 's/^#   //p' Makefile

$(VENV_PY):
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "Python 3.10+ is needed"'
	$(PYTHON) -m venv $(VENV)

$(DEV_STAMP): pyproject.toml | $(VENV_PY)
	$(VENV_PY) -m pip install -e '.[dev]'
	touch $@

# The demo extra includes everything of dev's that the demo needs, but dev is installed too so
# that one venv serves `make demo`, `make test` and `make lint`.
$(DEMO_STAMP): pyproject.toml | $(VENV_PY)
	$(VENV_PY) -m pip install -e '.[dev,demo]'
	touch $@ $(DEV_STAMP)

# Only the two plugins the demo runs (target-duckdb is installed by a plain `meltano install`).
$(PLUGINS_STAMP): meltano.yml pyproject.toml $(DEMO_STAMP)
	$(MELTANO) install tap-cloudwatch-metrics target-jsonl
	touch $@

install: $(DEV_STAMP)

demo: $(DEMO_STAMP) $(PLUGINS_STAMP)
	$(VENV_PY) scripts/demo.py

demo-reset: $(DEMO_STAMP)
	-$(MELTANO) state clear --force dev:tap-cloudwatch-metrics-to-target-jsonl:demo
	rm -rf output/demo

test: install
	$(VENV_PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Every plugin of meltano.yml, for the end-to-end run.
E2E_PLUGINS_STAMP := .meltano/.installed-e2e-plugins
$(E2E_PLUGINS_STAMP): meltano.yml pyproject.toml $(DEMO_STAMP)
	$(MELTANO) install
	touch $@

.PHONY: e2e
e2e: $(DEMO_STAMP) $(E2E_PLUGINS_STAMP)
	$(VENV_PY) scripts/e2e_meltano.py

# Benchmark (benchmarks/run.py): writes benchmarks/results.md. e.g. BENCH_ARGS="--workload a --repeat 3"
# The measured children run in .venv-bench, which holds only the tap's own dependencies, as the
# venv Meltano makes for a plugin does: the dev venv's matplotlib brings numpy, which joblib
# (imported by singer_sdk) then loads, 12 MB of RSS no user pays.
BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed
$(BENCH_STAMP): pyproject.toml
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -e .
	touch $@

.PHONY: bench
bench: install $(BENCH_STAMP)
	$(VENV_PY) benchmarks/run.py --child-python $(BENCH_VENV)/bin/python $(BENCH_ARGS)
