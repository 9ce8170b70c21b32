# Quickstart: `make demo` (the main job on a local DynamoDB) and `make test`. Both install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DYNALITE_CLI := .local/dynalite/node_modules/dynalite/cli.js
DYNALITE_VERSION := 4.0.0
PYTEST_ARGS ?=

.PHONY: install dynalite lint typecheck test unit demo e2e bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip install --python $(BIN)/python --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP) dynalite

dynalite: $(DYNALITE_CLI)

$(DYNALITE_CLI):
	@command -v node >/dev/null 2>&1 || { echo "error: Node.js ('node') is required for the local DynamoDB server (dynalite); install it, e.g. apt-get install nodejs npm" >&2; exit 1; }
	@command -v npm >/dev/null 2>&1 || { echo "error: npm is required to install the local DynamoDB server (dynalite); install it, e.g. apt-get install npm" >&2; exit 1; }
	npm install --no-save --no-audit --no-fund --prefix .local/dynalite dynalite@$(DYNALITE_VERSION)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy airflow_dynamoscan

test: install lint typecheck
	$(BIN)/python -m pytest $(PYTEST_ARGS)

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

demo: install
	$(BIN)/python -m devtools.demo

# A real deployment on this machine: PostgreSQL (installed with apt if absent), scheduler, dag-processor,
# api-server, triggerer, LocalExecutor; the example DAGs triggered through the REST API and checked.
# `make e2e E2E_SCREENSHOT=docs/grid-view.png` also saves the grid view of the mapped export (headless Chromium).
E2E_ARGS ?=
E2E_SCREENSHOT ?=

e2e: install
	$(BIN)/python -u -m tests.e2e.run $(if $(E2E_SCREENSHOT),--screenshot $(E2E_SCREENSHOT)) $(E2E_ARGS)

BENCH_STAMP := $(VENV)/.installed-bench
BENCH_ARGS ?=

$(BENCH_STAMP): $(STAMP)
	$(BIN)/uv pip install --python $(BIN)/python --quiet -e '.[test,bench]'
	touch $(BENCH_STAMP)

# About 15 minutes; `make bench BENCH_ARGS=--quick` is a 2-minute smoke run. Results in benchmarks/results/.
bench: install $(BENCH_STAMP)
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .local demo-output .pytest_cache .mypy_cache .ruff_cache
