#!/usr/bin/env bash
# Create or refresh the pip-only ROS 2 environment in .venv (idempotent; quick when nothing changed):
#   1. check the tools the build needs; 2. install the pinned wheels (requirements-lock.txt);
#   3. fix the ROS wheels' CMake exports; 4. build and install dinno_msgs into the venv;
#   5. install dinno_ros (editable) with its console scripts and share/ files;
#   6. when the ROS 2 launch stack's wheels are at hand ($DINNO_ROS2_LAUNCH, default
#      ../shared/vendor/ros2-launch), install them and the `ros2` CLI (ros2 launch/run/topic/interface).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DINNO_VENV:-$ROOT/.venv}"
PYTHON_BIN="${PYTHON:-python3}"
cd "$ROOT"

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }
hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

# 1. tools ----------------------------------------------------------------------------------
command -v "$PYTHON_BIN" >/dev/null || die "$PYTHON_BIN not found: install Python 3.10-3.12 (e.g. apt-get install python3 python3-venv)"
"$PYTHON_BIN" - <<'PY' || die "Python 3.10 to 3.12 is needed (the ROS 2 Kilted wheels); set PYTHON=/path/to/python3.11"
import sys
sys.exit(0 if (3, 10) <= sys.version_info[:2] <= (3, 12) else 1)
PY
command -v cmake >/dev/null || die "cmake not found: it builds dinno_msgs (apt-get install cmake)"
command -v cc >/dev/null || command -v gcc >/dev/null || die "no C compiler found: dinno_msgs needs one (apt-get install build-essential)"
command -v c++ >/dev/null || command -v g++ >/dev/null || die "no C++ compiler found: dinno_msgs needs one (apt-get install g++)"

# 2. wheels ---------------------------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV"
  "$PYTHON_BIN" -m venv "$VENV" || die "could not create a virtual environment (apt-get install python3-venv)"
fi
PY="$VENV/bin/python"
stamp_wheels="$(hash_of requirements-lock.txt)"
if [ "$(cat "$VENV/.dinno_wheels" 2>/dev/null)" != "$stamp_wheels" ]; then
  say "installing pinned wheels (ROS 2 Kilted core, torch, ...): a few minutes the first time"
  "$PY" -m pip install -q --disable-pip-version-check -r requirements-lock.txt \
    || die "pip install -r requirements-lock.txt failed (see above): is PyPI reachable?"
  echo "$stamp_wheels" > "$VENV/.dinno_wheels"
fi

# 3. CMake exports of the ROS wheels point at the wheel build machine's Python -------------------
"$PY" "$ROOT/scripts/fix_ros_cmake.py" "$VENV" || die "could not patch the ROS wheels' CMake files"

# Build an interface package with cmake and install it into the venv (the venv is the ROS prefix).
build_interface() {
  local name="$1" src="$2"
  say "building $name"
  export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"
  export PATH="$VENV/bin:$PATH"
  rm -rf "build/$name"; mkdir -p build
  { cmake -S "$src" -B "build/$name" -DCMAKE_INSTALL_PREFIX="$VENV" -DBUILD_TESTING=OFF \
      -DPython3_EXECUTABLE="$PY" -DCMAKE_BUILD_TYPE=Release \
    && cmake --build "build/$name" -j "$(nproc)" \
    && cmake --install "build/$name"; } > "build/$name.log" 2>&1 \
    || { tail -30 "build/$name.log" >&2; die "building $name failed; full log: build/$name.log"; }
}

# 4. dinno_msgs -----------------------------------------------------------------------------
stamp_msgs="$(hash_of dinno_msgs/package.xml dinno_msgs/CMakeLists.txt dinno_msgs/msg/*.msg)"
if [ "$(cat "$VENV/.dinno_msgs" 2>/dev/null)" != "$stamp_msgs" ] || ! "$PY" -c "import dinno_msgs.msg" 2>/dev/null; then
  build_interface dinno_msgs dinno_msgs
  "$PY" -c "import dinno_msgs.msg" || die "dinno_msgs was built but does not import"
  echo "$stamp_msgs" > "$VENV/.dinno_msgs"
fi

# 5. dinno_ros ------------------------------------------------------------------------------
stamp_pkg="$(hash_of setup.py setup.cfg package.xml)"
if [ "$(cat "$VENV/.dinno_pkg" 2>/dev/null)" != "$stamp_pkg" ] || ! "$PY" -c "import dinno_ros" 2>/dev/null; then
  say "installing dinno_ros (editable)"
  "$PY" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e . \
    || die "pip install -e . failed (see above)"
  echo "$stamp_pkg" > "$VENV/.dinno_pkg"
fi
"$PY" -m dinno_ros.share --install-index "$VENV" || die "could not register dinno_ros in the venv's ament index"

# 6. the launch stack and the ros2 CLI (not on PyPI: wheels built from upstream) -------------------
LAUNCH_DIR="${DINNO_ROS2_LAUNCH:-$ROOT/../shared/vendor/ros2-launch}"
if [ -d "$LAUNCH_DIR/wheels" ]; then
  stamp_launch="$(ls -l "$LAUNCH_DIR"/wheels/*.whl | awk '{print $5, $NF}' | sha256sum | cut -d' ' -f1)"
  if [ "$(cat "$VENV/.dinno_launch" 2>/dev/null)" != "$stamp_launch" ] \
      || ! "$PY" -c "import launch_ros.actions, launch_pytest, ros2cli" 2>/dev/null; then
    say "installing the ROS 2 launch stack and ros2 CLI from $LAUNCH_DIR"
    # --no-deps always: their requirement names ('launch') would resolve to unrelated PyPI projects
    "$PY" -m pip install -q --disable-pip-version-check --no-deps "$LAUNCH_DIR"/wheels/*.whl \
      || die "installing the launch wheels from $LAUNCH_DIR/wheels failed (see above)"
    if ! "$PY" -c "import composition_interfaces.srv" 2>/dev/null; then
      build_interface composition_interfaces "$LAUNCH_DIR/src/composition_interfaces"
    fi
    "$PY" -c "import launch_ros.actions, launch_pytest, ros2cli" || die "the launch stack does not import"
    echo "$stamp_launch" > "$VENV/.dinno_launch"
  fi
else
  say "no launch stack at $LAUNCH_DIR: ros2 launch and the launch tests are unavailable (set DINNO_ROS2_LAUNCH)"
fi
say "environment ready: $VENV"
