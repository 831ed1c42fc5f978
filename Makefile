# Fresh machine to running code. `make run` sets up, trains the default experiment on the twin and
# prints the learned policy's KPIs next to the heuristic's; `make test` sets up and runs the checks
# and tests (what .ci/run calls); `make simulate` runs the default line on its own rules for a week.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup run simulate test lint

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch is pinned to the CPU build (2.13.0): an open torch requirement pulls a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "torch==2.13.0" -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

run: setup
	$(BIN)/python -m experiments.train experiment=speed

simulate: setup
	$(BIN)/python -m experiments.simulate

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy hardware envs agents experiments

test: lint
	$(BIN)/pytest
