# snapflow_ros: one command to set up and run the demo, one to set up and run the tests.
# Both environments are created on first use and reused afterwards (see scripts/setup_env.sh).

SHELL := /bin/bash
VENV := .venv/bin
VENV_SIM := .venv-sim/bin
PYTEST_ARGS ?=

.PHONY: setup setup-policy setup-sim demo demo-quick test test-policy test-sim lint bench clean

setup:
	scripts/setup_env.sh all

setup-policy:
	scripts/setup_env.sh policy

setup-sim:
	scripts/setup_env.sh sim

# The main job: scripted demos -> teacher -> SnapFlow -> offline eval -> closed loop over ROS 2.
demo: setup
	$(VENV)/snapflow demo --config config/sim_demo.yaml

# Tests of the policy side (Python 3.12) and of the simulator side (Python 3.11).
test: setup
	$(MAKE) --no-print-directory test-policy test-sim

test-policy:
	$(VENV)/python -m pytest test --ignore=test/sim -q --durations=15 $(PYTEST_ARGS)

test-sim:
	$(VENV_SIM)/python -m pytest test/sim -q -p no:cacheprovider $(PYTEST_ARGS)

lint:
	$(VENV)/ruff check snapflow_ros test benchmarks launch scripts setup.py

clean:
	rm -rf .venv .venv-sim build install log *.egg-info .pytest_cache .ruff_cache
