# The project's commands. Every install step lives here, so a fresh machine with only Python
# and pip runs them as they are.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
BENCH_STAMP = $(VENV)/.installed-bench
# One file of pins per Python (3.10 to 3.13, those Airflow 3.3 supports), as Airflow publishes its own:
# the release of the virtualenv's Python once it exists, of $(PYTHON) before.
PYTHON_RELEASE := $(shell $(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON)) -c \
	'import sys; print("%d.%d" % sys.version_info[:2])')
CONSTRAINTS = constraints/constraints-$(PYTHON_RELEASE).txt

.PHONY: install test test-fast lint typecheck pytest day e2e bench bench-sandbox demo demo-curl constraints \
	dist clean

# The virtualenv is (re)built when the project or its pinned constraints change. The sandbox bank
# (sandbox/, a distribution of its own, never in the provider's wheel) comes with it for the tests.
$(STAMP): pyproject.toml sandbox/pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e ".[test]" -e "./sandbox[pytest]"
	touch $(STAMP)

# A Python without pins of its own is one Airflow 3.3 does not support.
constraints/constraints-%.txt:
	@echo "No pins for Python $* (no $@): use Python 3.10 to 3.13, e.g. make PYTHON=python3.12" >&2
	@exit 1

install: $(STAMP)

# The peers the benchmarks compare with (the `bench` extra), on top of the test install: `make test`
# never needs them.
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e ".[test,bench]"
	touch $(BENCH_STAMP)

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy

# The suite on two workers (pytest-xdist), the cores CI has; PYTEST_WORKERS=1 runs it in one process.
PYTEST_WORKERS ?= 2
pytest: install
	$(BIN)/pytest $(if $(filter-out 1,$(PYTEST_WORKERS)),-n $(PYTEST_WORKERS))

test: lint typecheck pytest

# The pure tests only (no sandbox bank, no process, no Airflow DB): about half a minute.
test-fast: install
	$(BIN)/pytest --fast

# A whole day at a faulty bank (RELIABILITY.md): 24 hourly DAG runs over 500 accounts, about 5 minutes.
# Replay a day with BANKAPI_DAY_SEED=<the seed it printed>.
day: install
	$(BIN)/pytest -m day tests/day

# A real deployment on loopback (api-server, scheduler, dag-processor, triggerer; Celery workers and
# Redis), started and stopped by the tests, their logs kept in .e2e-logs/; and the connection form in
# headless Chromium (apt: chromium, redis-server).
e2e: install
	$(BIN)/pytest -m e2e tests/e2e

# Every benchmark against the sandbox; regenerates BENCHMARKS.md (~45 min on 2 cores: half of it the real triggerer, a quarter the cluster day).
bench: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks --write BENCHMARKS.md

# The sandbox's own capacity (BENCHMARKS.md, "Sandbox capacity").
bench-sandbox: install
	$(BIN)/python -m benchmarks sandbox_capacity

# A real Airflow (AIRFLOW_HOME under .demo/, wiped at each run) runs the hourly balances example DAG
# against a local sandbox bank, then prints what it wrote.
demo: install
	$(BIN)/python -m demos.airflow_demo --state .demo --dags dags_examples

# The bank's own curl commands against a fresh sandbox.
demo-curl: install
	$(BIN)/python -m demos.curl_demo

# Refresh the pins of the virtualenv's Python from a working install (run after changing dependencies,
# once per Python: make constraints PYTHON=python3.X VENV=.venv-3.X, then commit); the bench extra is
# installed first so that its pins stay.
constraints: $(BENCH_STAMP)
	$(BIN)/python -m pip freeze --exclude-editable | grep -v -i -E '^(airflow-provider-bankapi|pip|setuptools)==' > $(CONSTRAINTS)

# The wheel as the README builds it, with the example DAGs and the docs, checked as a package index would.
dist: install
	rm -rf dist
	$(BIN)/python -m pip wheel --no-deps -w dist .
	$(BIN)/twine check --strict dist/*.whl

clean:
	rm -rf $(VENV) dist .pytest_cache .mypy_cache .ruff_cache .hypothesis .demo .e2e-artifacts
