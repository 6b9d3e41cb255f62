# Two commands: `make run` (the demo on embedded defaults) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck pytest screenshot bench bench-quick soak histories clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

## run: start Temporal (UI on :8233), PostgreSQL, migrations, a worker and the API (:8000), then play the demo
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

## soak: the reliability tests at soak sizes; writes docs/RELIABILITY.md
SOAK_RESULTS := .awfdrs/reliability.json
soak: $(STAMP)
	@mkdir -p .awfdrs && rm -f $(SOAK_RESULTS)
	@start=$$(date +%s); \
	AWFDRS_SOAK=1 AWFDRS_RELIABILITY_RESULTS=$(CURDIR)/$(SOAK_RESULTS) \
		$(BIN)/pytest tests/reliability -p no:cacheprovider && \
	$(BIN)/python -m tests.reliability.report $(SOAK_RESULTS) docs/RELIABILITY.md \
		$$(( $$(date +%s) - start ))

## histories: record this release's workflow histories (tests/e2e/histories), replayed by CI
histories: $(STAMP)
	AWFDRS_RECORD_HISTORIES=1 $(BIN)/pytest tests/e2e/test_replay_corpus.py -k record_the_corpus

## screenshot: refresh docs/ui-incidents.png from the browser check
screenshot: $(STAMP)
	AWFDRS_SCREENSHOT=$(CURDIR)/docs/ui-incidents.png $(BIN)/pytest tests/test_console.py -k browser

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
