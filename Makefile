# Two commands a newcomer needs: `make dev` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: dev test test-crash check setup bench screenshots

$(BIN)/stepwell: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/stepwell

setup: $(BIN)/stepwell /usr/bin/chromium

# The dashboard's browser tests drive Debian's Chromium (Playwright never downloads a browser).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
/usr/bin/chromium:
	-$(SUDO) apt-get install -y chromium || ($(SUDO) apt-get update && $(SUDO) apt-get install -y chromium)

dev: setup
	$(BIN)/stepwell dev examples/shop.py examples/onboarding.py examples/reports.py

test: setup
	$(BIN)/pytest

# The crash-safety suite alone (also part of `make test`); -s prints what it checked.
test-crash: setup
	$(BIN)/pytest -m crash -s

check: setup
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/ruff check src tests bench examples
	$(BIN)/mypy

# Regenerate the dashboard screenshots in docs/img/ from the browser tests.
screenshots: setup
	STEPWELL_DOCS_SCREENSHOTS=1 $(BIN)/pytest tests/dashboard/test_browser.py

bench: setup
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench --quick
