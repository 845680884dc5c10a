"""
Signals on the pip runner (issue 11, item 6): the swarm stops and leaves no process behind.

SIGTERM and SIGHUP (what ``timeout``, systemd and a closed terminal send) stop every node within
5 s, as Ctrl-C does; a SIGKILLed runner's nodes notice their parent is gone and stop. A node that
hangs once asked to stop still ends: by its deadline (SIGALRM), or at once when its runner dies
(a robot is SIGKILLed, even deadlocked holding the interpreter lock).
"""

from __future__ import annotations

import os
from pathlib import Path
import signal
import sys
import time

from conftest import CONFIGS, TAG, tagged_processes, wait_for_line
import pytest
import yaml

pytestmark = pytest.mark.dds  # robot and monitor processes over DDS


def long_swarm(tmp_path: Path) -> Path:
    data = yaml.safe_load((CONFIGS / 'tiny_swarm.yaml').read_text())
    data['swarm']['monitor']['results_dir'] = str(tmp_path / 'results')
    path = tmp_path / 'swarm.yaml'
    path.write_text(yaml.safe_dump(data))
    return path


def start_running(processes, tmp_path: Path):
    """Start a 100,000-round swarm; return it once the monitor has reported a round."""
    cmd = [sys.executable, '-m', 'dinno_ros.swarm', long_swarm(tmp_path), '--rounds', '100000']
    proc, lines = processes.start(cmd, cwd=tmp_path)
    deadline = time.monotonic() + 120
    while not any('[monitor]' in line and ': consensus ' in line for line in lines):
        assert proc.poll() is None and time.monotonic() < deadline, ''.join(lines)[-3000:]
        time.sleep(0.2)
    return proc, lines


def nodes_left(env: dict[str, str], runner: int) -> list:
    return [p for p in tagged_processes(env[TAG]) if p.pid != runner]


@pytest.mark.fault('signal on the runner')
@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGHUP], ids=['SIGTERM', 'SIGHUP'])
def test_a_signal_on_the_runner_stops_every_node(processes, ros_env, tmp_path, sig) -> None:
    proc, lines = start_running(processes, tmp_path)
    assert len(nodes_left(ros_env, proc.pid)) == 4  # 3 robots and the monitor
    t0 = time.monotonic()
    os.kill(proc.pid, sig)  # the runner alone, as systemd or timeout would
    while nodes_left(ros_env, proc.pid) and time.monotonic() - t0 < 10.0:
        time.sleep(0.05)
    took = time.monotonic() - t0  # measured here: about 3 s (the monitor writes its results)
    code = processes.wait(proc, lines, timeout=30)
    out = ''.join(lines)
    assert not nodes_left(ros_env, proc.pid) and took < 5.0, (took, out[-3000:])
    assert f'{sig.name}: stopping the swarm' in out and code != 0


@pytest.mark.fault('runner SIGKILLed')
def test_nodes_stop_when_the_runner_is_killed(processes, ros_env, tmp_path) -> None:
    proc, lines = start_running(processes, tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    deadline = time.monotonic() + 8.0
    while nodes_left(ros_env, proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not nodes_left(ros_env, proc.pid), ''.join(lines)[-3000:]


STUCK_NODE = """
import ctypes, signal, sys, time
from dinno_ros.ros import lifecycle
from rclpy.node import Node


class Stuck(Node):  # its work ignores every stop; with 'gil' it hangs holding the GIL

    def __init__(self):
        super().__init__('stuck')

    def work(self, stop):
        print('working', flush=True)
        if sys.argv[1] == 'gil':  # a deadlock holding the interpreter lock: no handler runs
            libc, mutex = ctypes.PyDLL(None), ctypes.create_string_buffer(64)
            libc.pthread_mutex_lock(mutex)
            libc.pthread_mutex_lock(mutex)
        while True:
            time.sleep(0.1)

    def close(self):
        pass


lifecycle.STOP_DEADLINE_S = lifecycle.ORPHAN_DEADLINE_S = 2
lifecycle.run_node('stuck', Stuck, orphan_signal=getattr(signal, sys.argv[2]))
"""

RUNNER = """
import os, subprocess, sys
env = dict(os.environ, DINNO_PARENT_PID=str(os.getpid()))
subprocess.run([sys.executable, *sys.argv[1:]], env=env)
"""


def test_a_node_whose_stop_hangs_ends_by_the_deadline(processes, tmp_path) -> None:
    script = tmp_path / 'stuck.py'
    script.write_text(STUCK_NODE)
    proc, lines = processes.start([sys.executable, script, 'python', 'SIGTERM'])
    wait_for_line(lines, 'working', proc, timeout=60)
    t0 = time.monotonic()
    os.kill(proc.pid, signal.SIGTERM)
    code = processes.wait(proc, lines, timeout=30)
    took = time.monotonic() - t0
    assert code == -signal.SIGALRM and 1.5 < took < 6.0, (code, took, ''.join(lines))
    assert 'SIGTERM, stopping' in ''.join(lines)


@pytest.mark.parametrize(
    'hang, orphan_signal', [('gil', 'SIGKILL'), ('python', 'SIGTERM')], ids=['robot', 'monitor']
)
def test_an_orphaned_node_ends_even_when_it_hangs(
    processes, ros_env, tmp_path, hang, orphan_signal
) -> None:
    """A robot (SIGKILL) even holding the interpreter lock; a monitor (SIGTERM) by its deadline."""
    script = tmp_path / 'stuck.py'
    script.write_text(STUCK_NODE)
    runner, lines = processes.start([sys.executable, '-c', RUNNER, script, hang, orphan_signal])
    wait_for_line(lines, 'working', runner, timeout=60)
    assert len(nodes_left(ros_env, runner.pid)) == 1
    os.kill(runner.pid, signal.SIGKILL)
    runner.wait(timeout=10)
    t0 = time.monotonic()
    while nodes_left(ros_env, runner.pid) and time.monotonic() - t0 < 10.0:
        time.sleep(0.05)
    took = time.monotonic() - t0
    assert not nodes_left(ros_env, runner.pid) and took < (1.0 if hang == 'gil' else 5.0), took
