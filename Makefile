# Two commands: `make run` (the demo on embedded defaults) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck pytest screenshot bench bench-quick soak clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

## run: start Temporal (UI on :8233), PostgreSQL, migrations and a worker, then play the demo
run: $(STAMP)
	$(BIN)/awfdrs up --demo

## test: lint, type-check and run the whole suite against real PostgreSQL and Temporal
test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy --strict src tests benchmarks

pytest: $(STAMP)
	$(BIN)/pytest

## bench: the benchmark suite on this machine; writes docs/BENCHMARKS.md and .json
bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

bench-quick: $(STAMP)
	$(BIN)/python -m benchmarks.run --quick --output .awfdrs/bench-quick

## screenshot: refresh docs/ui-incidents.png from the browser check
screenshot: $(STAMP)
	AWFDRS_SCREENSHOT=$(CURDIR)/docs/ui-incidents.png $(BIN)/pytest tests/test_console.py -k browser

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
