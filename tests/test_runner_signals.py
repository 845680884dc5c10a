"""
Signals on the pip runner (issue 11, item 6): the swarm stops and leaves no process behind.

SIGTERM and SIGHUP (what ``timeout``, systemd and a closed terminal send) stop every node within
5 s, as Ctrl-C does; a SIGKILLed runner's nodes notice their parent is gone and stop.
"""

from __future__ import annotations

import os
from pathlib import Path
import signal
import sys
import time

from conftest import CONFIGS, TAG, tagged_processes
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
