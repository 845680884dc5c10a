"""Which nodes a swarm consists of: one plan for the launch file and for the pip-only runner."""

from __future__ import annotations

from dataclasses import dataclass, field
import os
from pathlib import Path
from typing import Any, Sequence

from dinno_ros.core.swarm.auth import SwarmCredentials
from dinno_ros.core.swarm.results import check_results_root
from dinno_ros.core.swarm.spec import load_swarm, SwarmSpec
from dinno_ros.share import share_dir

PACKAGE = 'dinno_ros'
DDS_PROFILES = 'config/dds/fastdds_profiles.xml'  # under the package share: one host
DDS_PROFILES_SUBNET = 'config/dds/fastdds_profiles_subnet.xml'  # discovery range SUBNET
# glibc malloc: serve blocks below 32 MB from the heap and keep up to 128 MB of freed heap, so a
# received weights message reuses memory instead of mapping (and page-faulting) fresh pages each
# time; a larger message is still mapped and returned to the system when freed
MALLOC_TUNABLES = 'glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=134217728'


@dataclass(frozen=True)
class NodeSpec:
    """One node to start: what a launch ``Node`` action or a runner process needs."""

    executable: str  # console script installed under lib/dinno_ros (ros2 run / launch)
    module: str  # the same entry point as ``python -m module`` (pip-only runner)
    name: str
    namespace: str
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f'{self.namespace}/{self.name}'.strip('/') if self.namespace else self.name

    @property
    def grouped(self) -> bool:
        """Whether this is a process of several robots, whose nodes name themselves (no remap)."""
        return 'robot_ids' in self.parameters

    @property
    def robots(self) -> tuple[int, ...]:
        """Return the robots this process runs (none for the monitor and the viewer)."""
        if self.grouped:
            return tuple(self.parameters['robot_ids'])
        return (int(self.parameters['robot_id']),) if 'robot_id' in self.parameters else ()

    def ros_args(self) -> list[str]:
        """``--ros-args`` for a plain process: namespace, node name and parameters."""
        if self.grouped:
            args = ['--ros-args']
        else:
            args = ['--ros-args', '-r', f'__node:={self.name}']
        if self.namespace:
            args += ['-r', f'__ns:=/{self.namespace}']
        for key, value in self.parameters.items():
            args += ['-p', f'{key}:={_param_literal(value)}']
        return args


def _param_literal(value: Any) -> str:
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, str):
        return value if value else "''"
    return repr(value)


@dataclass(frozen=True)
class SwarmPlan:
    spec: SwarmSpec
    nodes: tuple[NodeSpec, ...]
    # the swarm id and key every node gets in its environment (never on a command line)
    env: dict[str, str] = field(default_factory=dict, repr=False)


def dds_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """
    Return the environment entries that give the nodes the package's Fast DDS profiles.

    Shared memory with segments that hold a whole model, UDP on loopback only (on every interface
    under ``ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET``), readers that free each payload once taken
    (``config/dds/``), malloc settings that let large messages reuse memory, and a one-thread BLAS
    (numpy's dot checks every received vector; idle BLAS workers would spin on the cores the robots
    train on). Profiles are left out when the user chose their own, the others when set already.
    """
    env = os.environ if env is None else env
    out = {} if 'GLIBC_TUNABLES' in env else {'GLIBC_TUNABLES': MALLOC_TUNABLES}
    if 'OPENBLAS_NUM_THREADS' not in env:
        out['OPENBLAS_NUM_THREADS'] = '1'
    if 'FASTDDS_DEFAULT_PROFILES_FILE' in env or 'RMW_FASTRTPS_USE_QOS_FROM_XML' in env:
        return out
    subnet = env.get('ROS_AUTOMATIC_DISCOVERY_RANGE', '').upper() == 'SUBNET'
    profiles = DDS_PROFILES_SUBNET if subnet else DDS_PROFILES
    return {
        **out,
        'FASTDDS_DEFAULT_PROFILES_FILE': str(share_dir() / profiles),
        'RMW_FASTRTPS_USE_QOS_FROM_XML': '1',
    }


def parse_robot_ids(text: str) -> list[int]:
    """Return the sorted robot ids of ``0,1,2``; ValueError when it is no such list."""
    try:
        ids = sorted({int(part) for part in text.split(',') if part.strip()})
    except ValueError:
        ids = []
    if not ids:
        raise ValueError('expected robot ids like 0,1,2')
    return ids


def robot_namespace(robot_id: int) -> str:
    return f'robot_{robot_id}'


def robot_processes(
    ids: Sequence[int], per_process: int, params: dict[str, Any]
) -> list[NodeSpec]:
    """Return the robot processes: one per robot, or groups of ``per_process`` robots."""
    if per_process <= 1:
        return [
            NodeSpec(
                'robot_node',
                'dinno_ros.ros.robot_node',
                'robot',
                robot_namespace(i),
                {**params, 'robot_id': i},
            )
            for i in ids
        ]
    groups = [list(ids[at:at + per_process]) for at in range(0, len(ids), per_process)]
    return [
        NodeSpec(
            'robots_node',
            'dinno_ros.ros.robots_node',
            f'robots_{group[0]}_to_{group[-1]}',
            '',
            {**params, 'robot_ids': group},
        )
        for group in groups
    ]


def plan_swarm(
    config: str | Path,
    *,
    num_robots: int | None = None,
    rounds: int | None = None,
    robots: Sequence[int] | None = None,
    monitor: bool = True,
    results_dir: str | Path | None = None,
    robots_label: str = '--robots',
    results_label: str = '--results-dir',
) -> SwarmPlan:
    """
    Validate the config (raising before anything starts) and list the nodes to start.

    ``robots`` limits which robots this host starts (a swarm spread over several hosts on one
    domain; ``robots_label`` names that option in errors); the monitor runs where ``monitor`` is
    true and writes its results under ``results_dir`` (default: the config's
    ``swarm.monitor.results_dir``), which must be a folder it can write, or make
    (``ResultsDirError``, a ValueError, naming ``results_label`` or the config key, if not).
    """
    spec = load_swarm(config, num_robots=num_robots, rounds=rounds)
    ids = list(range(spec.num_robots)) if robots is None else list(robots)
    bad = [i for i in ids if not 0 <= i < spec.num_robots]
    if bad:
        raise ValueError(
            f'{robots_label}: robot {bad[0]} does not exist; allowed: 0..{spec.num_robots - 1}'
        )
    if monitor and spec.section.monitor.writeout:
        if results_dir:
            check_results_root(results_dir, results_label)
        else:
            check_results_root(spec.section.monitor.results_dir, 'swarm.monitor.results_dir')
    common = {'config': str(spec.path), 'num_robots': spec.num_robots, 'rounds': spec.rounds}
    robot_params = {**common, 'wait_for_monitor': monitor, 'results_dir': str(results_dir or '')}
    nodes = robot_processes(ids, spec.section.robots_per_process, robot_params)
    if monitor:
        nodes.append(
            NodeSpec(
                'monitor_node',
                'dinno_ros.ros.monitor_node',
                'monitor',
                '',
                {**common, 'results_dir': str(results_dir or '')},
            )
        )
    credentials = SwarmCredentials.new(spec.experiment.name, spec.experiment.seed)
    return SwarmPlan(spec=spec, nodes=tuple(nodes), env={**credentials.env(), **dds_env()})
