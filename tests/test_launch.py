"""
launch_pytest tests of the installed swarm.launch.py: the ROS user's interface, run for real.

They include ``share/dinno_ros/launch/swarm.launch.py`` from the ament index (a colcon install, or
the pip-only venv that ``make setup`` registers) and watch every node's exit. In a ROS 2
workspace: ``colcon build && colcon test --packages-select dinno_ros``.
"""

from __future__ import annotations

import os
from pathlib import Path
import re
import time

from conftest import CONFIGS, LAUNCH_STACK_HINT, next_domain_id, tail
import pytest
import torch
import yaml

launch_pytest = pytest.importorskip('launch_pytest', reason=LAUNCH_STACK_HINT)
pytest.importorskip('launch_ros', reason=LAUNCH_STACK_HINT)

from ament_index_python.packages import get_package_share_directory  # noqa: E402, I100
from launch import LaunchDescription  # noqa: E402
from launch.actions import (  # noqa: E402
    IncludeLaunchDescription,
    RegisterEventHandler,
    SetEnvironmentVariable,
)
from launch.event_handlers import OnProcessExit, OnProcessIO  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402

pytestmark = pytest.mark.dds  # launched node processes over DDS

ROUNDS = 6
DEADLINE_S = 240.0


def launch_config(tmp_path: Path, swarm: dict | None = None, **monitor) -> Path:
    """tiny_swarm.yaml (3 robots, quick) with the settings given, written to tmp_path."""
    data = yaml.safe_load((CONFIGS / 'tiny_swarm.yaml').read_text())
    data['swarm'].update(swarm or {})
    data['swarm']['monitor'].update(monitor)
    path = tmp_path / 'launch_swarm.yaml'
    path.write_text(yaml.safe_dump(data))
    return path


class Watch:
    """What the launched processes did: exit codes by process name, and their output."""

    def __init__(self) -> None:
        self.exits: dict[str, int] = {}
        self.lines: list[str] = []

    def on_exit(self, event, _context) -> None:
        self.exits[event.action.name] = event.returncode

    def on_output(self, event) -> None:
        name = event.action.name
        self.lines.extend(f'[{name}] {line}\n' for line in event.text.decode().splitlines())

    def monitor_exited(self) -> bool:
        return any(name.startswith('monitor_node') for name in self.exits)

    def wait(self, launch_service, timeout: float) -> None:
        """Until the monitor exited and the launch ended (or fail with the last lines)."""
        deadline = time.monotonic() + timeout
        while not (self.monitor_exited() and launch_service.task.done()):
            if time.monotonic() > deadline:
                pytest.fail(f'the launch did not end in {timeout:.0f} s:\n{tail(self.lines)}')
            if launch_service.task.done() and not self.monitor_exited():
                break  # the launch itself failed
            time.sleep(0.2)


def swarm_description(config: Path, results: Path, watch: Watch, **env: str) -> LaunchDescription:
    share = get_package_share_directory('dinno_ros')
    environment = {
        'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST',
        'ROS_DOMAIN_ID': str(next_domain_id()),
        'PYTHONUNBUFFERED': '1',
        **env,
    }
    return LaunchDescription(
        [
            *(SetEnvironmentVariable(k, v) for k, v in environment.items()),
            RegisterEventHandler(OnProcessExit(on_exit=watch.on_exit)),
            RegisterEventHandler(
                OnProcessIO(on_stdout=watch.on_output, on_stderr=watch.on_output)
            ),
            # ReadyToTest first: the test itself waits, with a deadline, even if the include fails
            launch_pytest.actions.ReadyToTest(),
            IncludeLaunchDescription(
                PythonLaunchDescriptionSource(os.path.join(share, 'launch', 'swarm.launch.py')),
                launch_arguments={
                    'config': str(config),
                    'rounds': str(ROUNDS),
                    'results_dir': str(results),
                }.items(),
            ),
        ]
    )


def results_of(results: Path) -> dict:
    files = sorted(results.glob('*/*_results.pt'))
    assert files, f'no results under {results}'
    return torch.load(files[-1], weights_only=True)


def assert_complete_run(
    watch: Watch, results: Path, processes: tuple[str, ...] = ('robot_node',) * 3
) -> None:
    out = tail(watch.lines, 80)
    kinds = sorted(name.rsplit('-', 1)[0] for name in watch.exits)  # robot_node-5: 5th process
    assert kinds == sorted(['monitor_node', *processes]), (watch.exits, out)
    assert all(code == 0 for code in watch.exits.values()), (watch.exits, out)
    metrics = results_of(results)
    assert metrics['complete'] and not metrics['interrupted'], out
    completed = metrics['rounds_completed']
    assert completed == {0: ROUNDS, 1: ROUNDS, 2: ROUNDS}, completed
    assert metrics['rounds_reported'] == ROUNDS


@pytest.fixture
def watch() -> Watch:
    return Watch()


@pytest.fixture(autouse=True)
def keep_environment():
    """Leave os.environ as it was (SetEnvironmentVariable writes this process's environment)."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@launch_pytest.fixture
def swarm(tmp_path, watch):
    return swarm_description(launch_config(tmp_path), tmp_path / 'results', watch)


@pytest.mark.launch(fixture=swarm)
def test_launch_file_runs_three_robots_and_the_monitor_to_the_end(tmp_path, watch, launch_service):
    watch.wait(launch_service, DEADLINE_S)
    assert_complete_run(watch, tmp_path / 'results')
    yield


@launch_pytest.fixture
def grouped_swarm(tmp_path, watch):
    config = launch_config(tmp_path, swarm={'robots_per_process': 2})
    return swarm_description(config, tmp_path / 'results', watch)


@pytest.mark.launch(fixture=grouped_swarm)
def test_two_robots_per_process_run_to_the_end(tmp_path, watch, launch_service):
    watch.wait(launch_service, DEADLINE_S)
    assert_complete_run(watch, tmp_path / 'results', ('robots_node', 'robots_node'))
    robots = {m[1] for line in watch.lines if (m := re.search(r'\[(robot_\d)\.robot\]', line))}
    assert robots == {'robot_0', 'robot_1', 'robot_2'}, tail(watch.lines)  # namespaces kept
    yield


@launch_pytest.fixture
def slow_monitor_swarm(tmp_path, watch):
    # every evaluation takes 6 s, while a robot silent for 2 + 1.5 s counts as lost
    config = launch_config(
        tmp_path, swarm={'round_timeout': 2.0}, lost_after=1.5, evaluate_frequency=3
    )
    return swarm_description(config, tmp_path / 'results', watch, DINNO_MONITOR_EVAL_DELAY_S='6')


@pytest.mark.launch(fixture=slow_monitor_swarm)
def test_a_monitor_busier_than_lost_after_still_completes_every_round(
    tmp_path, watch, launch_service
):
    watch.wait(launch_service, DEADLINE_S)
    assert_complete_run(watch, tmp_path / 'results')
    assert not any('lost' in line for line in watch.lines if '[monitor' in line), tail(watch.lines)
    yield
