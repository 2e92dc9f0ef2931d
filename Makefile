# Two commands on a fresh machine: `make demo` (the main job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
IMAGE ?= ghcr.io/redis-audiences/redis-audiences:0.1.0
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: demo test lint typecheck unit bench image clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

demo: $(STAMP) ## Sync two Jaffle Shop audiences into Redis, Full then Delta
	$(BIN)/python examples/03-jaffle-shop/demo.py

test: $(STAMP) lint typecheck ## Lint, type-check and run every test
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check operator tests bench examples scripts
	$(BIN)/ruff format --check operator tests bench examples scripts
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) ## Fast tests only (no Redis, no PostgreSQL)
	$(BIN)/pytest tests/unit

bench: $(STAMP) ## Full sync of 1,000,000 members vs redis-benchmark
	$(BIN)/python bench/full_sync.py

image: ## Build the operator's container image (needs a Docker engine)
	docker build -t $(IMAGE) .

clean:
	rm -rf $(VENV) .demo .bench
