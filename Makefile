# dinno_ros: the two commands a user needs are `make run` and `make test`; both set up .venv first.
VENV   ?= .venv
PY     := $(VENV)/bin/python
CONFIG ?= lidar.yaml
ARGS   ?=
PYTEST_ARGS ?=

.PHONY: setup run test bench clean lock colcon-build colcon-test

setup:
	@bash scripts/setup_env.sh

run: setup
	$(PY) -m dinno_ros.swarm $(CONFIG) --viz results/swarm/viz $(ARGS)

test: setup
	$(PY) -m pytest tests $(PYTEST_ARGS)

bench: setup
	$(PY) bench/exchange.py
	$(PY) bench/lidar.py
	$(PY) bench/planner.py

# Build both packages the ROS way with colcon (pip-installed colcon and ROS wheels) into build/ws.
colcon-build: setup
	@bash scripts/colcon_build.sh

# The ROS user's test path: colcon build, colcon test (the whole suite, launch tests included),
# colcon test-result --verbose.
colcon-test: setup
	@bash scripts/colcon_test.sh

# Regenerate the pinned closure after editing requirements.txt.
lock:
	$(PY) -m pip install -q -r requirements.txt
	$(PY) scripts/lock_requirements.py

clean:
	rm -rf build install log results .pytest_cache
