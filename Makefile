# Two commands on a fresh machine: `make demo` (the main job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: demo test lint typecheck unit bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

demo: $(STAMP) ## Sync two Jaffle Shop audiences into Redis, Full then Delta
	$(BIN)/python examples/jaffle-shop/demo.py

test: $(STAMP) lint typecheck ## Lint, type-check and run every test
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check operator tests bench examples
	$(BIN)/ruff format --check operator tests bench examples
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) ## Fast tests only (no Redis, no PostgreSQL)
	$(BIN)/pytest tests/unit

bench: $(STAMP) ## Full sync of 1,000,000 members vs redis-benchmark
	$(BIN)/python bench/full_sync.py

clean:
	rm -rf $(VENV) .demo .bench
