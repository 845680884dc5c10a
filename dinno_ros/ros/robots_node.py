"""
Several robots in one process (``swarm.robots_per_process``), as a ROS 2 component container.

Each robot is still its own ``RobotNode`` in its own namespace (``robot_<i>``), with its own
topics, and talks to every other robot, also those in this process, only over DDS. What they
share is the process: one Python, one torch and numba import (about 500 MB resident each
process), one DDS participant and one executor thread; each robot's rounds run on a thread of
its own. Parameters are those of ``robot_node`` with ``robot_ids`` (a list) for ``robot_id``.
"""

from __future__ import annotations

import signal

from dinno_ros.ros.lifecycle import NodeStartError, run_nodes
from dinno_ros.ros.robot_node import RobotNode
from rclpy.node import Node
from rclpy.parameter import Parameter


def make_robots() -> list[Node]:
    """Return one ``RobotNode`` for each id of the ``robot_ids`` parameter."""
    reader = Node('robots')  # reads the process's parameters; no topics
    ids = reader.declare_parameter('robot_ids', Parameter.Type.INTEGER_ARRAY).value
    reader.destroy_node()
    if not ids:
        raise NodeStartError('robot_ids: expected a non-empty list of robot ids')
    return [RobotNode(int(i)) for i in ids]


def main(args: list[str] | None = None) -> int:
    return run_nodes('robots_node', make_robots, args, orphan_signal=signal.SIGKILL)


if __name__ == '__main__':
    raise SystemExit(main())
