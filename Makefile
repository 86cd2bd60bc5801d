# Two commands a newcomer needs: `make dev` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: dev test check setup bench

$(BIN)/stepwell: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/stepwell

setup: $(BIN)/stepwell

dev: setup
	$(BIN)/stepwell dev examples/shop.py examples/onboarding.py examples/reports.py

test: setup
	$(BIN)/pytest

check: setup
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/ruff check src tests bench examples
	$(BIN)/mypy

bench: setup
	$(BIN)/python -m bench
