# Quickstart: `make demo` (the main job on a local DynamoDB) and `make test`. Both install what they need.
# The lock (.ci/lock.txt) is resolved for Python 3.11: the venv takes 3.11 from pyenv or PATH when there is one.
PYTHON ?= $(or $(call find_python,3.11),python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DYNALITE_CLI := .local/dynalite/node_modules/dynalite/cli.js
DYNALITE_VERSION := 4.0.0
PYTEST_ARGS ?=
# The tests run in one worker process per core (pytest-xdist), each module whole in one worker so that its
# module-scoped tables are made once; each worker has its own local DynamoDB server and AIRFLOW_HOME.
# `make test PYTEST_WORKERS=0` runs them in this process.
PYTEST_WORKERS ?= auto
PYTEST_PARALLEL = -n $(PYTEST_WORKERS) --dist loadfile

.PHONY: install lock dynalite lint typecheck test unit demo e2e e2e-celery bench clean check-floors matrix-lowest matrix-newest package-check

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# `make install` installs exactly the lock: every package of the test and lint groups and of the package's own
# dependencies and extras, with hashes, for Python 3.11; then the package itself, editable, without dependencies.
# `make lock` refreshes the lock after a change of pyproject.toml (what is pinned stays where it can);
# `make lock UPGRADE=1` takes the newest releases on purpose. `make matrix-newest` shows what moved since.
LOCK := .ci/lock.txt
UV_VERSION := 0.13.9
UPGRADE ?=

$(STAMP): pyproject.toml $(LOCK) | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check 'uv==$(UV_VERSION)'
	$(BIN)/uv pip sync --python $(BIN)/python --quiet --require-hashes $(LOCK)
	$(BIN)/uv pip install --python $(BIN)/python --quiet --no-deps -e .
	touch $(STAMP)

lock: | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check 'uv==$(UV_VERSION)'
	$(BIN)/uv pip compile pyproject.toml --all-extras --group test --group lint --python-version 3.11 \
		--python-platform x86_64-manylinux_2_28 --generate-hashes --quiet $(if $(UPGRADE),--upgrade) \
		--custom-compile-command 'make lock' -o $(LOCK)

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
	$(BIN)/python -m pytest $(PYTEST_PARALLEL) $(PYTEST_ARGS)

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit $(PYTEST_PARALLEL) $(PYTEST_ARGS)

demo: install
	$(BIN)/python -m devtools.demo

# A real deployment on this machine: PostgreSQL (installed with apt if absent), scheduler, dag-processor,
# api-server, triggerer, LocalExecutor; the example DAGs triggered through the REST API and checked.
# `make e2e E2E_SCREENSHOT=docs/grid-view.png` also saves the grid view of the mapped export (headless Chromium).
E2E_ARGS ?=
E2E_SCREENSHOT ?=

e2e: install
	$(BIN)/python -u -m tests.e2e.run $(if $(E2E_SCREENSHOT),--screenshot $(E2E_SCREENSHOT)) $(E2E_ARGS)

# The parallel export on the CeleryExecutor: Redis (installed with apt if absent), PostgreSQL, two workers in
# sessions of their own; one worker SIGKILLed mid-export. The Celery provider goes to .local/e2e-celery, not .venv.
e2e-celery: install
	$(BIN)/python -u -m tests.e2e.celery $(E2E_ARGS)

BENCH_ARGS ?=

# Exports against the raw floor in one run, each case in its own process: about 6 minutes on 2 idle cores, writes
# benchmarks/results/ and the tables of docs/benchmarks.md; `BENCH_ARGS=--large` adds a 1,000,000-item memory case,
# `BENCH_ARGS=--quick` is a 2-minute smoke run. Then the cost of conditional writes to a transform (docs/transforms.md):
# a local server behind the latency proxy, about 2 minutes (benchmarks/results/transform.md); then the Iceberg
# mirror's load and 1 % merge (docs/iceberg.md, benchmarks/results/iceberg.json).
bench: $(STAMP)
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)
	$(BIN)/python -m benchmarks.transform_writes $(BENCH_ARGS)
	$(BIN)/python -m benchmarks.iceberg $(BENCH_ARGS)

# The supported range, each end in a venv built from nothing under .local/venvs/: the unit and DAG tests on
# Python 3.10 with Airflow 2.11 and every declared floor (.ci/constraints-lowest.txt), and on Python 3.13 with
# the newest release of everything. The Pythons come from pyenv (~/.pyenv/versions/) or PATH.
MATRIX_TESTS ?= tests/unit tests/dags
MATRIX_VENVS := .local/venvs
find_python = $(firstword $(wildcard $(HOME)/.pyenv/versions/$(1).*/bin/python$(1)) $(shell command -v python$(1)))
PYTHON_LOWEST ?= $(call find_python,3.10)
PYTHON_NEWEST ?= $(call find_python,3.13)

check-floors: $(STAMP)
	$(BIN)/python -m devtools.check_floors

matrix-lowest: $(STAMP) dynalite check-floors
	@test -n "$(PYTHON_LOWEST)" || { echo "error: matrix-lowest needs Python 3.10 (pyenv install 3.10, or set PYTHON_LOWEST=/path/to/python3.10)" >&2; exit 1; }
	rm -rf $(MATRIX_VENVS)/lowest
	$(BIN)/uv venv --quiet --python $(PYTHON_LOWEST) $(MATRIX_VENVS)/lowest
	$(BIN)/uv pip install --python $(MATRIX_VENVS)/lowest/bin/python --quiet -e . --group test \
		--constraints .ci/constraints-lowest.txt
	$(BIN)/uv pip list --python $(MATRIX_VENVS)/lowest/bin/python 2>/dev/null | grep -E '^(apache-airflow|boto|orjson|pyarrow|numpy|moto|pytest|hypothesis)'
	$(MATRIX_VENVS)/lowest/bin/python -m pytest $(MATRIX_TESTS) -p no:cacheprovider $(PYTEST_PARALLEL) $(PYTEST_ARGS)

matrix-newest: $(STAMP) dynalite
	@test -n "$(PYTHON_NEWEST)" || { echo "error: matrix-newest needs Python 3.13 (pyenv install 3.13, or set PYTHON_NEWEST=/path/to/python3.13)" >&2; exit 1; }
	rm -rf $(MATRIX_VENVS)/newest
	$(BIN)/uv venv --quiet --python $(PYTHON_NEWEST) $(MATRIX_VENVS)/newest
	$(BIN)/uv pip install --python $(MATRIX_VENVS)/newest/bin/python --quiet -e . --group test
	$(BIN)/python -m devtools.drift $(MATRIX_VENVS)/newest/bin/python
	$(MATRIX_VENVS)/newest/bin/python -m pytest $(MATRIX_TESTS) -p no:cacheprovider $(PYTEST_PARALLEL) $(PYTEST_ARGS)

# The distribution as PyPI gets it: build, `twine check --strict`, then install the wheel alone into a fresh venv
# and ask Airflow for the provider.
VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"$$/\1/p' airflow_dynamoscan/__init__.py)

package-check: $(STAMP)
	rm -rf dist $(MATRIX_VENVS)/wheel
	$(BIN)/uv build --quiet --out-dir dist
	$(BIN)/uv tool run --quiet --from 'twine>=6.1' twine check --strict dist/*
	$(BIN)/uv venv --quiet --python $(BIN)/python $(MATRIX_VENVS)/wheel
	$(BIN)/uv pip install --python $(MATRIX_VENVS)/wheel/bin/python --quiet dist/airflow_dynamoscan-$(VERSION)-py3-none-any.whl
	$(BIN)/python -m devtools.check_provider $(MATRIX_VENVS)/wheel/bin/airflow $(VERSION)

clean:
	rm -rf $(VENV) .local demo-output dist .pytest_cache .mypy_cache .ruff_cache
