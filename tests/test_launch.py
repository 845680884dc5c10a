"""launch_pytest tests of the installed swarm.launch.py (run where launch_pytest exists; skipped here).

In a ROS 2 workspace: ``colcon build && colcon test --packages-select dinno_ros``.
"""

from __future__ import annotations

import os
import time

import pytest

launch_pytest = pytest.importorskip(
    'launch_pytest', reason='launch_pytest is not installed (pip-only setup)'
)
pytest.importorskip('launch_ros', reason='launch_ros is not installed')

from ament_index_python.packages import get_package_share_directory  # noqa: E402
from conftest import CONFIGS, next_domain_id  # noqa: E402
from dinno_msgs.msg import SwarmMetrics  # noqa: E402
from dinno_ros.ros import qos  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
import rclpy  # noqa: E402
from launch import LaunchDescription  # noqa: E402

os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.setdefault('ROS_DOMAIN_ID', str(next_domain_id()))


@launch_pytest.fixture
def swarm_launch():
    share = get_package_share_directory('dinno_ros')
    return LaunchDescription(
        [
            IncludeLaunchDescription(
                PythonLaunchDescriptionSource(os.path.join(share, 'launch', 'swarm.launch.py')),
                launch_arguments={
                    'config': str(CONFIGS / 'tiny_swarm.yaml'),
                    'rounds': '8',
                }.items(),
            ),
            launch_pytest.actions.ReadyToTest(),
        ]
    )


def wait_for_metrics(last_round: int, timeout: float) -> list[int]:
    """Rounds of the /swarm/metrics messages seen until ``last_round`` arrived (or the timeout)."""
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('launch_test_listener', context=context)
    seen: list[int] = []
    node.create_subscription(
        SwarmMetrics, '/swarm/metrics', lambda m: seen.append(m.round), qos.metrics()
    )
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    executor.add_node(node)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and last_round not in seen:
            executor.spin_once(timeout_sec=0.1)
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)
    return seen


@pytest.mark.launch(fixture=swarm_launch)
def test_installed_launch_file_runs_the_swarm_to_its_last_round():
    seen = wait_for_metrics(last_round=8, timeout=300)
    assert 8 in seen, f'the monitor published rounds {seen}'
    yield
