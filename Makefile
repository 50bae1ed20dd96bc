# Two commands do all the set-up on a fresh clone:
#   make run   — create .venv, install, serve the embedded mode on http://127.0.0.1:8080/
#   make test  — create .venv, install, lint, type-check and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint test-ui bench worker docs lock clean

$(BIN)/.installed: pyproject.toml client/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]' -e ./client
	touch $@

run: $(BIN)/.installed
	$(BIN)/python -m server

worker: $(BIN)/.installed
	$(BIN)/python -m workers

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/vulture

# The UI's pure modules (state, run state, streaming markdown, errors): Node's own runner.
test-ui:
	node --test tests/ui/

test: lint test-ui
	$(BIN)/pytest $(PYTEST_ARGS)

# Regenerate docs/openapi.json and docs/configuration.md (the tests check they are current).
docs: $(BIN)/.installed
	$(BIN)/python -m server.docgen

# Re-pin the image's runtime dependencies (requirements.txt) after editing pyproject.toml.
lock: $(BIN)/.installed
	$(BIN)/python .ci/lock.py

bench: $(BIN)/.installed
	for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
