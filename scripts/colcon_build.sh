#!/usr/bin/env bash
# Build dinno_msgs and dinno_ros the ROS way (colcon) in build/ws, with the pip-installed ROS wheels of .venv.
# In a normal ROS 2 install, do the same from your workspace: see README "In a ROS 2 workspace".
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DINNO_VENV:-$ROOT/.venv}"
WS="$ROOT/build/ws"
mkdir -p "$WS/src"
ln -sfn "$ROOT" "$WS/src/dinno_ros"
export PATH="$VENV/bin:$PATH" AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"
cd "$WS"
# the repository root is the dinno_ros package, so colcon would not look inside it for dinno_msgs:
# name both package folders explicitly
colcon build --base-paths src/dinno_ros src/dinno_ros/dinno_msgs \
  --cmake-args -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$VENV/bin/python" "$@"
echo "built: source $WS/install/setup.bash"
