# Quickstart: `make run` serves the app on http://localhost:7071 (devhost + SQLite),
# `make test` runs the whole suite. Both bootstrap the virtualenv in .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench
PORT ?= 7071
BENCH_ARGS ?=

.PHONY: run test bench bench-smoke venv clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

$(BENCH_STAMP): $(STAMP) requirements-bench.txt
	$(PY) -m pip install --quiet -r requirements-bench.txt
	touch $@

run: $(STAMP)
	$(PY) -m devhost --port $(PORT)

test: $(STAMP)
	$(PY) -m pytest

bench: $(BENCH_STAMP)
	$(PY) -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .devhost .pytest_cache .hypothesis
