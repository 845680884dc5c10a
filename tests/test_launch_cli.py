"""
``ros2 launch dinno_ros swarm.launch.py`` and the ``ros2`` CLI as a user types them.

All with real processes. Bad arguments fail before any node starts; ``rviz:=true`` without rviz2
leaves nothing behind; Ctrl-C stops every node cleanly (no SIGTERM escalation); a robot that dies
makes the launch fail and the results say which rounds are missing, unless ``swarm.respawn``
restarts it and it rejoins. The ``ros_env`` fixture fails
any test that leaves a process of its own running.
"""

from __future__ import annotations

from pathlib import Path
import re
import signal

from conftest import CONFIGS, ros2_cli, tail, wait_for_line
import psutil
import pytest
import torch
import yaml

pytestmark = pytest.mark.dds  # ros2 CLI and node processes over DDS

LAUNCH = ['launch', 'dinno_ros', 'swarm.launch.py']
METRICS = 'dinno_msgs/msg/SwarmMetrics'


def config_file(tmp_path: Path, **swarm) -> Path:
    data = yaml.safe_load((CONFIGS / 'tiny_swarm.yaml').read_text())
    data['swarm'].update(swarm)
    path = tmp_path / 'cli_swarm.yaml'
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    'argument, message',
    [
        ('num_robots:=abc', 'num_robots:=abc: expected an integer'),
        ('rounds:=-3', 'rounds:=-3: expected an integer >= 0'),
        ('robots:=0,7', 'robots:=0,7: robot 7 does not exist; allowed: 0..3'),
        ('robots:=a,b', 'robots:=a,b: expected robot ids like 0,1,2'),
        ('monitor:=maybe', 'monitor:=maybe: expected true or false'),
        ('config:=no_such.yaml', "config:=no_such.yaml: config 'no_such.yaml' is neither"),
    ],
)
def test_bad_launch_argument_fails_before_any_node_starts(processes, tmp_path, argument, message):
    code, out = processes.run([*ros2_cli(), *LAUNCH, argument], timeout=90, cwd=tmp_path)
    assert code != 0, out
    assert message in out, out
    assert 'process started' not in out, out


def test_rviz_without_rviz2_fails_and_leaves_nothing_running(processes, tmp_path):
    from ament_index_python.packages import get_package_prefix, PackageNotFoundError

    try:
        get_package_prefix('rviz2')
        pytest.skip('rviz2 is installed here: this test is for machines without it')
    except PackageNotFoundError:
        pass
    config = config_file(tmp_path)
    code, out = processes.run(
        [*ros2_cli(), *LAUNCH, f'config:={config}', 'rviz:=true'], timeout=90, cwd=tmp_path
    )
    assert code != 0, out
    assert 'rviz:=true: rviz2 is not installed' in out, out
    assert 'process started' not in out, out  # ros_env then checks that nothing is left


def test_ctrl_c_stops_every_node_cleanly(processes, tmp_path):
    config = config_file(tmp_path)
    proc, lines = processes.start(
        [*ros2_cli(), *LAUNCH, f'config:={config}', 'rounds:=100000', f'results_dir:={tmp_path}'],
        cwd=tmp_path,
    )
    wait_for_line(lines, r'\[monitor\].*round 3: consensus', proc, timeout=180)
    code, echoed = processes.run(
        [*ros2_cli(), 'topic', 'echo', '--once', '--no-daemon', '/swarm/metrics', METRICS],
        timeout=60,
    )
    assert code == 0 and re.search(r'^round: \d+', echoed, re.M), echoed
    nodes = psutil.Process(proc.pid).children(recursive=True)
    assert len(nodes) >= 4, nodes
    processes.interrupt(proc)  # SIGINT to the launch and every node, as a terminal's Ctrl-C
    processes.wait(proc, lines, timeout=30)
    out = ''.join(lines)
    assert out.count('process has finished cleanly') == 4, out[-4000:]
    assert 'exit code' not in out and 'SIGTERM' not in out, out[-4000:]
    assert 'Traceback' not in out, out[-4000:]
    assert re.search(r'\[monitor\].*interrupted after \d+ of 100000 rounds', out), out[-4000:]


def launch_and_kill_robot_2(processes, tmp_path: Path, rounds: int, **swarm) -> tuple[int, str]:
    """Launch a swarm, SIGKILL robot 2 at its log line of round/10; return exit code and output."""
    config = config_file(tmp_path, round_timeout=2.0, lost_after_rounds=2, **swarm)
    data = yaml.safe_load(config.read_text())
    data['swarm']['monitor']['lost_after'] = 2.0
    config.write_text(yaml.safe_dump(data))
    proc, lines = processes.start(
        [
            *ros2_cli(),
            *LAUNCH,
            f'config:={config}',
            f'rounds:={rounds}',
            f'results_dir:={tmp_path}',
        ],
        cwd=tmp_path,
    )
    wait_for_line(lines, rf'\[robot_2\.robot\]: round {rounds // 10}: ', proc, timeout=180)
    robot_2 = [
        p
        for p in psutil.Process(proc.pid).children(recursive=True)
        if '__ns:=/robot_2' in ' '.join(p.cmdline())
    ]
    assert robot_2, tail(lines)
    robot_2[0].send_signal(signal.SIGKILL)
    code = processes.wait(proc, lines, timeout=240)
    return code, ''.join(lines)


@pytest.mark.fault('robot killed for good')
def test_a_robot_that_dies_fails_the_launch_and_the_results_say_so(processes, tmp_path):
    rounds = 300  # many: robot 2 is killed mid-run, and rounds take milliseconds here
    code, out = launch_and_kill_robot_2(processes, tmp_path, rounds)
    assert code != 0, out[-4000:]
    assert 'robot_2/robot exited with -9' in out, out[-4000:]
    assert re.search(
        rf'\[monitor\].*incomplete run: robot_2 stopped after \d+ of {rounds} rounds', out
    ), out[-4000:]
    results = torch.load(next(tmp_path.glob('*/*_results.pt')), weights_only=True)
    assert not results['complete']
    done = results['rounds_completed']
    assert done[0] == done[1] == rounds and done[2] < rounds, done


@pytest.mark.fault('robot killed and restarted: rejoins')
def test_with_respawn_a_robot_that_dies_is_restarted_and_rejoins(processes, tmp_path):
    rounds = 2000  # the others must still be under way when robot 2's new process is up
    code, out = launch_and_kill_robot_2(processes, tmp_path, rounds, respawn=1)
    assert code == 0, out[-4000:]
    assert re.search(r'\[robot_2\.robot\].*rejoins the swarm at round [1-9]', out), out[-4000:]
    results = torch.load(next(tmp_path.glob('*/*_results.pt')), weights_only=True)
    assert results['complete'] and results['lost_robots'] == [], out[-4000:]
    assert all(done == rounds for done in results['rounds_completed'].values())


def test_ros2_cli_finds_the_package_and_its_interfaces(processes):
    code, out = processes.run([*ros2_cli(), 'pkg', 'executables', 'dinno_ros'], timeout=60)
    assert code == 0, out
    for executable in ('robot_node', 'monitor_node', 'viz_node'):
        assert f'dinno_ros {executable}' in out, out
    code, out = processes.run(
        [*ros2_cli(), 'interface', 'show', 'dinno_msgs/msg/Weights'], timeout=60
    )
    assert code == 0 and 'uint8[] data' in out, out
