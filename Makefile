# Two commands: `make run` (the demo on embedded defaults) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test unit lint typecheck pytest screenshot bench bench-quick soak histories clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

## run: start Temporal (UI on :8233), PostgreSQL, migrations, a worker and the API (:8000), then play the demo
run: $(STAMP)
	$(BIN)/awfdrs up --demo

## test: lint, type-check and run the whole suite against real PostgreSQL and Temporal
test: lint typecheck pytest

## unit: the pure tests only (no PostgreSQL, no Temporal), in seconds
unit: $(STAMP)
	$(BIN)/pytest tests/unit -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy --strict src tests benchmarks

# The suite mostly waits (timers, polls, processes starting): two workers, each with its own
# database and Temporal dev server, take it in about two thirds of the time on two cores.
TEST_WORKERS ?= 2

pytest: $(STAMP)
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile

## bench: the benchmark suite on this machine; writes docs/BENCHMARKS.md and .json
bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

bench-quick: $(STAMP)
	$(BIN)/python -m benchmarks.run --quick --output .awfdrs/bench-quick

## soak: the reliability tests at soak sizes; writes docs/RELIABILITY.md
SOAK_RESULTS := .awfdrs/reliability.json
soak: $(STAMP)
	@mkdir -p .awfdrs && rm -f $(SOAK_RESULTS)
	@start=$$(date +%s); \
	AWFDRS_SOAK=1 AWFDRS_RELIABILITY_RESULTS=$(CURDIR)/$(SOAK_RESULTS) \
		$(BIN)/pytest tests/e2e/reliability -p no:cacheprovider && \
	$(BIN)/python -m tests.e2e.reliability.report $(SOAK_RESULTS) docs/RELIABILITY.md \
		$$(( $$(date +%s) - start ))

## histories: record this release's workflow histories (tests/e2e/histories), replayed by CI
histories: $(STAMP)
	AWFDRS_RECORD_HISTORIES=1 $(BIN)/pytest tests/e2e/test_replay_corpus.py -k record_the_corpus

## screenshot: refresh the console's screenshots and docs/ui-incidents.png from the browser checks
screenshot: $(STAMP)
	AWFDRS_SCREENSHOTS=$(CURDIR)/docs $(BIN)/pytest tests/integration/api/test_console_web.py -k browser
	AWFDRS_SCREENSHOT=$(CURDIR)/docs/ui-incidents.png $(BIN)/pytest tests/e2e/test_temporal_ui.py -k browser

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
