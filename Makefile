# Quickstart: `make run` serves the app on http://localhost:7071 (devhost + SQLite),
# `make test` runs the whole suite. Both bootstrap the virtualenv in .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench
# checkov and the workflow linter live in their own virtualenv: checkov pins heavy dependencies
# that must not disturb the app's. If it cannot be built, the infra tests that need it skip.
INFRA_VENV := .venv-infra
INFRA_STAMP := $(INFRA_VENV)/.installed
MUTATION_STAMP := $(VENV)/.installed-mutation
PORT ?= 7071
WORKERS ?= 1
BENCH_ARGS ?=

.PHONY: run test lint chaos fuzz bench bench-smoke mutants mutmut customisation venv infra-venv clean azurite

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

$(BENCH_STAMP): $(STAMP) requirements-bench.txt
	$(PY) -m pip install --quiet -r requirements-bench.txt
	touch $@

infra-venv: $(INFRA_STAMP)

$(INFRA_STAMP): requirements-infra.txt
	@( test -x $(INFRA_VENV)/bin/python || $(PYTHON) -m venv $(INFRA_VENV) ) \
	  && $(INFRA_VENV)/bin/python -m pip install --quiet --upgrade pip \
	  && $(INFRA_VENV)/bin/python -m pip install --quiet -r requirements-infra.txt \
	  && touch $@ \
	  || echo "WARNING: $(INFRA_VENV) could not be built; the checkov and workflow-lint tests will skip"

$(MUTATION_STAMP): $(STAMP) requirements-mutation.txt
	$(PY) -m pip install --quiet -r requirements-mutation.txt
	touch $@

# Azurite (the storage emulator the queue trigger uses), pinned in devhost/triggers/azurite.py, installed
# with npm into .devhost/azurite; without npm this says what is missing and `make run` goes on.
azurite: $(STAMP)
	$(PY) -m devhost.triggers.azurite install

run: $(STAMP) azurite
	$(PY) -m devhost --port $(PORT) --workers $(WORKERS) --start-azurite

# The suite includes the DBOS peer's smoke test, so it installs the benchmark extras too.
test: $(BENCH_STAMP) $(INFRA_STAMP) azurite
	$(PY) -m pytest

# Static checks (configured in pyproject.toml): ruff, then mypy over the app, devhost and bench/
# (bench/ imports the peers' packages, so the benchmark extras are installed too).
# .pre-commit-config.yaml runs the same two commands before each commit.
lint: $(BENCH_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# The crash test at full size: a few hundred lifecycles, a kill -9 every second or so.
CHAOS_LIFECYCLES ?= 300
CHAOS_KILLS ?= 12
chaos: $(STAMP)
	CHAOS_LIFECYCLES=$(CHAOS_LIFECYCLES) CHAOS_KILLS=$(CHAOS_KILLS) $(PY) -m pytest -q -p no:cacheprovider tests/proofs/test_chaos.py --timeout=900

# Differential fuzzing: generated orchestrations on devhost against a reference interpreter of
# the host's rules (tests/fuzz, docs/fuzzing.md). FUZZ_SEED empty = a fresh random seed (printed);
# FUZZ_VOCAB=known leaves out the departures still being fixed (tests/fuzz/generator.py KNOWN).
FUZZ_PROGRAMS ?= 2000
FUZZ_SEED ?=
FUZZ_WORKERS ?= 1
FUZZ_VOCAB ?= all
# Then FUZZ_PROCESS cases on a real devhost process killed with SIGKILL (about 2 s each).
FUZZ_PROCESS ?= 20
fuzz: $(STAMP)
	FUZZ_PROGRAMS=$(FUZZ_PROGRAMS) FUZZ_SEED=$(FUZZ_SEED) FUZZ_WORKERS=$(FUZZ_WORKERS) \
	  FUZZ_VOCAB=$(FUZZ_VOCAB) $(PY) -m tests.fuzz.runner
	test "$(FUZZ_PROCESS)" = 0 || FUZZ_SEED=$(FUZZ_SEED) FUZZ_WORKERS=$(FUZZ_WORKERS) \
	  $(PY) -m tests.fuzz.runner --process $(FUZZ_PROCESS)

bench: $(BENCH_STAMP)
	$(PY) -m bench $(BENCH_ARGS)

bench-smoke: $(BENCH_STAMP)
	$(PY) -m bench --size smoke $(BENCH_ARGS)

# One mutant per guarantee (scripts/mutants.py): each must make the test that proves it fail.
mutants: $(STAMP)
	$(PY) scripts/mutants.py

# The README's one-line customisation, applied to a temporary copy: the stop answers while the
# added step runs, only tests/template fail (each naming its fix command), the contract passes.
customisation: $(STAMP)
	$(PY) scripts/customisation.py --contract all

# Mutation testing of workflow/ against its unit tests (mutmut; config in setup.cfg).
mutmut: $(MUTATION_STAMP)
	rm -rf mutants
	$(VENV)/bin/mutmut run --max-children 2
	$(VENV)/bin/mutmut results

clean:
	rm -rf $(VENV) $(INFRA_VENV) .devhost .pytest_cache .hypothesis mutants .mypy_cache .ruff_cache build *.egg-info
