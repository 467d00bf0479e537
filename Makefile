# Two commands for a newcomer: `make dev` and `make test`. Both install into .venv when needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: dev test test-sqlite test-postgres bench screenshots install clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

dev: $(STAMP)
	$(VENV)/bin/ecomflux dev

# The full suite runs twice: once on SQLite, once on PostgreSQL (127.0.0.1:5432, database test).
test: $(STAMP)
	ECOMFLUX_TEST_DB=sqlite $(PY) -m pytest -q $(PYTEST_ARGS)
	ECOMFLUX_TEST_DB=postgres $(PY) -m pytest -q $(PYTEST_ARGS)

test-sqlite: $(STAMP)
	ECOMFLUX_TEST_DB=sqlite $(PY) -m pytest -q $(PYTEST_ARGS)

test-postgres: $(STAMP)
	ECOMFLUX_TEST_DB=postgres $(PY) -m pytest -q $(PYTEST_ARGS)

# Refresh the README's pictures (docs/screenshots) from the browser tests.
screenshots: $(STAMP)
	ECOMFLUX_SCREENSHOT_DIR=$(CURDIR)/docs/screenshots ECOMFLUX_TEST_DB=sqlite $(PY) -m pytest -q tests/browser

# Benchmarks need wrk (load generator) and the local PostgreSQL + Redis; results in bench/results/.
bench: $(STAMP)
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk >/dev/null)
	$(PY) -m bench $(BENCH)

clean:
	rm -rf $(VENV) instance .pytest_cache .hypothesis
