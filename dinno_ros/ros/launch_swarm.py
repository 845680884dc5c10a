"""
The launch actions of a swarm, for ``launch/swarm.launch.py`` (needs the ROS 2 launch stack).

``swarm_actions`` checks the launch arguments (``dinno_ros.core.swarm.launch_args``) and builds
one ``Node`` per node of ``plan_swarm``'s plan, the same plan the pip-only runner starts. Any error
is raised before a node starts. ``SwarmExits`` watches the nodes' exits: the monitor finishing
ends the launch; a node that failed, or a monitor that reports missing rounds, makes the launch
exit non-zero with a line that names them.
"""

from __future__ import annotations

import os
import tempfile

from ament_index_python.packages import get_package_prefix, PackageNotFoundError
from dinno_ros.core.swarm.launch_args import (
    ARGUMENTS,
    LaunchArgumentError,
    parse_launch_arguments,
    plan_from_launch,
)
from dinno_ros.core.swarm.plan import NodeSpec, PACKAGE, SwarmPlan
from dinno_ros.core.swarm.shm import remove_stale_segments
from dinno_ros.share import share_dir
from dinno_ros.tools.rviz_config import write_rviz
from launch import LaunchContext
from launch.actions import EmitEvent, RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.events.process import ProcessExited
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

RVIZ_HINT = 'rviz2 is not installed (e.g. apt install ros-$ROS_DISTRO-rviz2); or leave rviz:=false'


class SwarmLaunchError(RuntimeError):
    """The launched swarm did not run to the end; the message names who failed."""


class SwarmExits:
    """
    Collects the nodes' exit codes; decides when the launch ends and whether it failed.

    A robot that dies is started again (a fresh ``Node`` action, which rejoins the swarm) up to
    ``respawn`` times: launch's own ``respawn`` would also restart robots that finished.
    """

    def __init__(
        self,
        plan: SwarmPlan,
        monitor_label: str | None,
        respawn: int = 0,
    ) -> None:
        self.plan = plan
        self.labels: dict[int, str] = {}  # id(Node action) -> the plan's label
        self.specs = {node.label: node for node in plan.nodes}
        self.pending = set(self.specs)
        self.monitor_label = monitor_label
        self.respawn = respawn
        self.restarts: dict[str, int] = {}
        self.failed: dict[str, int] = {}

    def start(self, node: NodeSpec) -> list:
        """Return the actions that start ``node`` and watch its exit."""
        action = Node(
            package=PACKAGE,
            executable=node.executable,
            name=None if node.grouped else node.name,  # a robots' process: they name themselves
            namespace=node.namespace or None,
            parameters=[node.parameters],
            additional_env=self.plan.env,  # the swarm id and key: not on any command line
            output='screen',
        )
        self.labels[id(action)] = node.label
        return [
            RegisterEventHandler(OnProcessExit(target_action=action, on_exit=self.on_exit)),
            action,
        ]

    def on_exit(self, event: ProcessExited, _context: LaunchContext):
        """Record one exit; end the launch (Shutdown, or an error if anything failed) when due."""
        label = self.labels.get(id(event.action), event.action.name)
        if event.returncode != 0 and self._may_restart(label):
            self.restarts[label] = self.restarts.get(label, 0) + 1
            return self.start(self.specs[label])
        self.pending.discard(label)
        if event.returncode != 0:
            self.failed[label] = event.returncode
        if label == self.monitor_label or not self.pending:
            if self.failed:
                raise SwarmLaunchError(
                    'the swarm failed: '
                    + ', '.join(f'{k} exited with {v}' for k, v in sorted(self.failed.items()))
                )
            return EmitEvent(event=Shutdown(reason=f'{label} finished'))
        return None

    def _may_restart(self, label: str) -> bool:
        node = self.specs.get(label)
        is_robot = node is not None and bool(node.robots)
        return is_robot and self.restarts.get(label, 0) < self.respawn


def swarm_actions(context: LaunchContext) -> list:
    """Return the swarm's Node actions and their exit handlers, for an ``OpaqueFunction``."""
    values = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    args = parse_launch_arguments(values)
    plan = plan_from_launch(args)
    remove_stale_segments()  # of nodes killed in earlier runs: they hold memory (as the runner)
    rviz = [rviz_node(plan)] if args.rviz else []
    monitor = [node.label for node in plan.nodes if node.executable == 'monitor_node']
    exits = SwarmExits(plan, monitor[0] if monitor else None, plan.spec.section.respawn)
    return [action for node in plan.nodes for action in exits.start(node)] + rviz


def rviz_node(plan: SwarmPlan) -> Node:
    """
    Return the RViz node with swarm.rviz (or one written for this swarm's robots).

    Raises if rviz2 is absent.
    """
    try:
        get_package_prefix('rviz2')
    except PackageNotFoundError:
        raise LaunchArgumentError(f'rviz:=true: {RVIZ_HINT}') from None
    config = share_dir() / 'rviz' / 'swarm.rviz'
    if plan.spec.num_robots != 4:  # swarm.rviz shows 4 robots: write one for this swarm
        config = write_rviz(plan.spec.num_robots, os.path.join(tempfile.mkdtemp(), 'swarm.rviz'))
    return Node(package='rviz2', executable='rviz2', arguments=['-d', str(config)], output='log')
