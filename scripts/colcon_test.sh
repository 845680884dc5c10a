#!/usr/bin/env bash
# The ROS user's test path: build both packages with colcon (scripts/colcon_build.sh), then
# `colcon test` and `colcon test-result --verbose`, with the pip-installed ROS wheels of .venv.
# DDS stays on this host: localhost discovery and a domain id of this run's own.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DINNO_VENV:-$ROOT/.venv}"
WS="$ROOT/build/ws"
bash "$ROOT/scripts/colcon_build.sh"
export PATH="$VENV/bin:$PATH"
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( (RANDOM % 100) + 101 ))}"
cd "$WS"
set +u  # colcon's setup scripts read unset variables
# shellcheck disable=SC1091
source install/setup.bash
set -u
rm -rf build/*/pytest.xml test_results
colcon test --base-paths src/dinno_ros src/dinno_ros/dinno_msgs --event-handlers console_direct+ \
  --pytest-args -p no:cacheprovider "$@" || true  # the verdict comes from test-result
colcon test-result --verbose
