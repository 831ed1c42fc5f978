# Fresh machine to running code. `make run` sets up, trains the default experiment on the twin and
# prints the learned policy's KPIs next to the heuristic's; `make test` sets up and runs the checks
# and tests (what .ci/run calls); `make simulate` runs the default line on its own rules for a week.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup run simulate test lint install-check

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

# A non-editable install into a fresh venv, run from a folder outside the source tree: the shipped
# configs and instances must come from the installed package (what CI proves after `make test`).
CHECK_DIR ?= $(abspath .install-check)
install-check:
	rm -rf $(CHECK_DIR)
	$(PYTHON) -m venv $(CHECK_DIR)/venv
	$(CHECK_DIR)/venv/bin/python -m pip install --quiet --upgrade pip
	$(CHECK_DIR)/venv/bin/python -m pip install --quiet "torch==2.13.0" .
	mkdir -p $(CHECK_DIR)/elsewhere
	cd $(CHECK_DIR)/elsewhere && ../venv/bin/python -m experiments.simulate duration_h=24
	cd $(CHECK_DIR)/elsewhere && ../venv/bin/python -m experiments.train experiment=speed \
		total_timesteps=2048 evaluation.every_steps=1024 evaluation.episodes=1 final.episodes=2 \
		final.continuing_seeds=1 final.continuing_days=0.5 progress_bar=false
	cd $(CHECK_DIR)/elsewhere && ../venv/bin/python -c "import envs, gymnasium as gym; \
		env = gym.make('smartline/Scheduling-v0', instance='ta01'); env.reset(seed=0); print('instances found')"
	rm -rf $(CHECK_DIR)
