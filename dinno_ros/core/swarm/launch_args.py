"""
The arguments of ``swarm.launch.py``, checked before any node starts (ROS-free, tested here).

Every error names the launch argument as the user typed it: ``num_robots:=abc: expected an
integer``, ``robots:=0,7: robot 7 does not exist; allowed: 0..3``, ``config:=nope.yaml: ...``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from dinno_ros.core.swarm.plan import parse_robot_ids, plan_swarm, SwarmPlan

TRUE, FALSE = ('true', '1', 'yes', 'on'), ('false', '0', 'no', 'off')

# name -> (default, description): what swarm.launch.py declares
ARGUMENTS = {
    'config': ('lidar.yaml', 'swarm config: a path, or a name under share/dinno_ros/config'),
    'num_robots': ('0', 'override the number of robots (0: the config)'),
    'rounds': ('0', 'override the number of rounds (0: the config)'),
    'robots': ('', 'start only these robots, e.g. 0,1,2 (default: all)'),
    'monitor': ('true', 'start the monitor on this host'),
    'rviz': ('false', 'start RViz with rviz/swarm.rviz'),
    'results_dir': ('', "where the monitor writes results (default: the config's)"),
}


class LaunchArgumentError(ValueError):
    """A launch argument with a value it cannot take; the message names the argument."""


@dataclass(frozen=True)
class SwarmLaunchArgs:
    config: str
    num_robots: int | None
    rounds: int | None
    robots: list[int] | None
    monitor: bool
    rviz: bool
    results_dir: str | None
    robots_text: str = ''


def parse_launch_arguments(values: Mapping[str, str]) -> SwarmLaunchArgs:
    """Typed launch arguments from their strings (missing ones take their defaults)."""
    unknown = sorted(set(values) - set(ARGUMENTS))
    if unknown:
        raise LaunchArgumentError(
            f'{unknown[0]}: unknown launch argument; allowed: {", ".join(ARGUMENTS)}'
        )
    text = {
        name: str(values.get(name, default)).strip() for name, (default, _) in ARGUMENTS.items()
    }
    if not text['config']:
        raise LaunchArgumentError('config:=: expected a config path or name, e.g. lidar.yaml')
    return SwarmLaunchArgs(
        config=text['config'],
        num_robots=_count('num_robots', text['num_robots']),
        rounds=_count('rounds', text['rounds']),
        robots=_ids(text['robots']),
        monitor=_flag('monitor', text['monitor']),
        rviz=_flag('rviz', text['rviz']),
        results_dir=text['results_dir'] or None,
        robots_text=text['robots'],
    )


def plan_from_launch(args: SwarmLaunchArgs) -> SwarmPlan:
    """``plan_swarm`` for these arguments; its errors say which launch argument caused them."""
    try:
        return plan_swarm(
            args.config,
            num_robots=args.num_robots,
            rounds=args.rounds,
            robots=args.robots,
            monitor=args.monitor,
            results_dir=args.results_dir,
            robots_label=f'robots:={args.robots_text}',
            results_label='results_dir',
        )
    except (ValueError, FileNotFoundError) as exc:
        message = str(exc)
        if message.startswith(('robots:=', 'results_dir:')):
            raise LaunchArgumentError(message) from exc
        raise LaunchArgumentError(f'config:={args.config}: {message}') from exc


def _count(name: str, value: str) -> int | None:
    try:
        number = int(value)
    except ValueError:
        raise LaunchArgumentError(f'{name}:={value}: expected an integer') from None
    if number < 0:
        raise LaunchArgumentError(f'{name}:={value}: expected an integer >= 0 (0: the config)')
    return number or None


def _ids(value: str) -> list[int] | None:
    if not value:
        return None
    try:
        return parse_robot_ids(value)
    except ValueError as exc:
        raise LaunchArgumentError(f'robots:={value}: {exc}') from None


def _flag(name: str, value: str) -> bool:
    if value.lower() in TRUE:
        return True
    if value.lower() in FALSE:
        return False
    raise LaunchArgumentError(f'{name}:={value}: expected true or false')
