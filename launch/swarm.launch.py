"""Launch a dinno_ros swarm: ``ros2 launch dinno_ros swarm.launch.py config:=lidar.yaml [rviz:=true]``.

Thin on purpose: the nodes come from ``dinno_ros.core.swarm.plan.plan_swarm``, the same plan the pip-only
runner (``dinno-swarm``) starts. A bare config name resolves under this package's share/config.
The launch ends when the monitor ends (after the configured rounds).
"""

from __future__ import annotations

import os
import tempfile

from ament_index_python.packages import get_package_share_directory
from dinno_ros.core.swarm.plan import PACKAGE, plan_swarm
from dinno_ros.tools.rviz_config import write_rviz
from launch.actions import DeclareLaunchArgument, OpaqueFunction, Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch import LaunchDescription


def _optional_int(context, name: str) -> int | None:
    value = LaunchConfiguration(name).perform(context).strip()
    return int(value) if value not in ('', '0') else None


def _robots(context) -> list[int] | None:
    value = LaunchConfiguration('robots').perform(context).strip()
    return [int(v) for v in value.split(',') if v.strip()] if value else None


def _swarm(context, *args, **kwargs):
    plan = plan_swarm(
        LaunchConfiguration('config').perform(context),
        num_robots=_optional_int(context, 'num_robots'),
        rounds=_optional_int(context, 'rounds'),
        robots=_robots(context),
        monitor=LaunchConfiguration('monitor').perform(context).lower() in ('true', '1'),
    )
    actions = [
        Node(
            package=PACKAGE,
            executable=node.executable,
            name=node.name,
            namespace=node.namespace or None,
            parameters=[node.parameters],
            output='screen',
            on_exit=Shutdown(reason='the monitor finished')
            if node.executable == 'monitor_node'
            else None,
        )
        for node in plan.nodes
    ]
    if LaunchConfiguration('rviz').perform(context).lower() in ('true', '1'):
        rviz_config = os.path.join(get_package_share_directory(PACKAGE), 'rviz', 'swarm.rviz')
        if (
            plan.spec.num_robots != 4
        ):  # swarm.rviz shows 4 robots: write one for this swarm's robots
            rviz_config = str(
                write_rviz(plan.spec.num_robots, os.path.join(tempfile.mkdtemp(), 'swarm.rviz'))
            )
        actions.append(
            Node(package='rviz2', executable='rviz2', arguments=['-d', rviz_config], output='log')
        )
    return actions


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                'config',
                default_value='lidar.yaml',
                description='swarm config: a path, or a name under share/dinno_ros/config',
            ),
            DeclareLaunchArgument(
                'num_robots',
                default_value='0',
                description='override the number of robots (0: config)',
            ),
            DeclareLaunchArgument(
                'rounds',
                default_value='0',
                description='override the number of rounds (0: config)',
            ),
            DeclareLaunchArgument(
                'robots', default_value='', description='start only these robots, e.g. 0,1,2'
            ),
            DeclareLaunchArgument(
                'monitor', default_value='true', description='start the monitor on this host'
            ),
            DeclareLaunchArgument(
                'rviz', default_value='false', description='start RViz with rviz/swarm.rviz'
            ),
            OpaqueFunction(function=_swarm),
        ]
    )
