# Two commands do all the set-up on a fresh clone:
#   make run   — create .venv, install, serve the embedded mode on http://127.0.0.1:8080/
#   make test  — create .venv, install, lint, type-check and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint test-ui bench worker docs lock clean mutate

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

# Mutation testing, not part of `make test` (configured in pyproject's [tool.mutmut]):
# mutants of server/runs/ and workers/executor.py against the fast run tests; prints the
# score (killed/survived/timeout) and lists the survivors. See docs/operations.md.
# The mutants' tests mostly wait on Redis and HTTP: more of them than cores run at once.
MUTATE_JOBS ?= 6
mutate: $(BIN)/.installed
	rm -rf mutants
	nice -n 10 $(BIN)/mutmut run --max-children $(MUTATE_JOBS)
	$(BIN)/mutmut export-cicd-stats
	cat mutants/mutmut-cicd-stats.json
	$(BIN)/mutmut results

bench: $(BIN)/.installed
	for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache mutants
