"""
Launch a dinno_ros swarm: ``ros2 launch dinno_ros swarm.launch.py config:=lidar.yaml``.

Thin on purpose: the nodes come from ``dinno_ros.core.swarm.plan.plan_swarm`` (the plan the
pip-only runner ``dinno-swarm`` starts), built by ``dinno_ros.ros.launch_swarm``. Bad arguments
fail before any node starts. The launch ends when the monitor ends, non-zero if any node failed or
rounds are missing. Arguments: ``ros2 launch dinno_ros swarm.launch.py --show-args``.
"""

from dinno_ros.core.swarm.launch_args import ARGUMENTS
from dinno_ros.ros.launch_swarm import swarm_actions
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [
            *(
                DeclareLaunchArgument(name, default_value=default, description=description)
                for name, (default, description) in ARGUMENTS.items()
            ),
            OpaqueFunction(function=swarm_actions),
        ]
    )
