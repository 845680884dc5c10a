"""
Faults over real DDS (issue 11, item 8): what an adversary or bad luck does to a running swarm.

Each run is a 3-robot swarm of ``test_swarm_lidar``'s; a rogue process (``tests/rogue.py``) forges
messages on robot 1's topics (noise, 1e30, unsigned, sender 999, round 2^32 - 1), floods them and
sends one 200 MB message, or a second swarm shares the domain: the results must equal the offline
runner's exactly. A robot SIGKILLed mid-run and restarted (``swarm.respawn``) rejoins: the run
completes with every robot, its final consensus within 2x of the undisturbed offline run's; so do
both robots of a ``robots_per_process: 2`` process SIGKILLed mid-run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import re
import signal
import subprocess
import sys
import threading
import time

from dinno_ros.core.learning import plots
from dinno_ros.core.learning.experiment import run_pair
from dinno_ros.core.swarm.plan import dds_env
from dinno_ros.core.swarm.spec import load_swarm
import psutil
import pytest
from test_swarm_lidar import kill_robot_2, results_file, robot_pid, start_swarm, swarm_config
import torch
import yaml

rclpy = pytest.importorskip('rclpy')
pytestmark = pytest.mark.dds


def assert_equals_offline(tmp_path, config) -> None:
    ros = torch.load(results_file(tmp_path, 'dinno'), weights_only=True)
    spec = load_swarm(config)
    torch.set_num_threads(1)
    offline, _ = run_pair(spec.experiment, spec.pair_key, 'cpu', progress=False)
    for name in ('validation_loss', 'consensus_error'):
        for a, b in zip(ros[name], offline[name]):
            assert torch.allclose(a, b, rtol=1e-4, atol=1e-6), (name, a, b)


class MemoryWatch:
    """The last resident set size of each robot process of a config, sampled every 0.2 s."""

    def __init__(self, config, robots: int) -> None:
        self.config, self.robots = config, robots
        self.last: dict[int, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(0.2):
            for i in range(self.robots):
                pid = robot_pid(self.config, i)
                try:
                    if pid is not None:
                        self.last[i] = psutil.Process(pid).memory_info().rss / 1e6
                except psutil.Error:
                    pass

    def close(self) -> dict[int, float]:
        self.stop.set()
        self.thread.join(timeout=2)
        return self.last


def start_rogue(mode: str, config, env: dict) -> subprocess.Popen:
    """Start ``tests/rogue.py`` against the swarm of ``config``; return once it publishes."""
    rogue = subprocess.Popen(
        [sys.executable, str(Path(__file__).parent / 'rogue.py'), mode, str(config)],
        env={**env, **dds_env(env)},  # the swarm's transports
        stdout=subprocess.PIPE,
        text=True,
    )
    assert rogue.stdout.readline().strip() == 'rogue ready'
    return rogue


def stop_rogue(rogue: subprocess.Popen) -> dict:
    """Stop the rogue; return its report (messages sent, rate, ...)."""
    rogue.send_signal(signal.SIGTERM)
    out, _ = rogue.communicate(timeout=30)
    return json.loads(out.strip().splitlines()[-1])


def run_with_rogue(mode: str, tmp_path, ros_env, rounds: int) -> tuple[Path, str, dict]:
    """Run a 3-robot swarm with a rogue beside it; return the config, output, rogue's report."""
    config = swarm_config(tmp_path, rounds=rounds, graph={'type': 'cycle'})
    rogue = start_rogue(mode, config, ros_env)
    try:
        proc, lines = start_swarm(config, ros_env, tmp_path)
        proc.wait(timeout=320)
    finally:
        report = stop_rogue(rogue)
    out = ''.join(lines)
    (tmp_path / 'swarm.log').write_text(out)
    assert proc.returncode == 0, out[-4000:]
    return config, out, report


@pytest.mark.parametrize(
    'mode, reasons',
    [
        pytest.param(
            'forge',
            ('dropped weights from robot 1', 'bad or missing MAC'),
            marks=pytest.mark.fault('spoofed and unsigned messages'),
            id='forged',
        ),
        pytest.param(
            'bounds',
            ('from robot 999 round 0: sender not in the swarm', 'round outside the run'),
            marks=pytest.mark.fault('sender 999 and round 2^32-1'),
            id='out-of-range',
        ),
    ],
)
def test_forged_and_unsigned_messages_change_nothing(tmp_path, ros_env, mode, reasons) -> None:
    config, out, report = run_with_rogue(mode, tmp_path, ros_env, rounds=10)
    assert report['sent'] > 50 and report['swarm'], 'the rogue never ran against the swarm'
    assert all(reason in out for reason in reasons), out[-4000:]
    assert out.count('dropped ') < 200, 'warnings are not rate-limited'
    assert_equals_offline(tmp_path, config)


@pytest.mark.fault('flood')
def test_a_flood_changes_nothing(tmp_path, ros_env) -> None:
    config, out, report = run_with_rogue('flood', tmp_path, ros_env, rounds=240)
    # the rogue aims at 2,000 a second; on 2 busy cores it has reached 1,400 - 2,000: at least the
    # issue's flood (1,000 a second) for over 5 s (240 rounds: 7 - 10 s of flood)
    assert report['rate'] > 1000 and report['seconds'] > 5, report
    assert out.count('dropped ') < 200, 'warnings are not rate-limited'
    assert_equals_offline(tmp_path, config)


@pytest.mark.fault('a 200 MB message')
def test_a_200_mb_message_is_dropped_unread_and_leaves_no_memory_behind(tmp_path, ros_env) -> None:
    config = swarm_config(tmp_path, rounds=100_000, graph={'type': 'cycle'})
    rogue = start_rogue('big', config, ros_env)
    proc, lines = start_swarm(config, ros_env, tmp_path)
    memory = MemoryWatch(config, 3)
    unread = re.compile(
        r'\[(robot_\d)/robot\].*dropped weights on robot 1.s topic unread: 2000\d+'
    )
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            readers = {m[1] for line in list(lines) if (m := unread.search(line))}
            if readers == {'robot_0', 'robot_2'}:
                time.sleep(3.0)  # a few rounds more, then the memory
                break
            time.sleep(0.2)
        rss = dict(memory.last)
        before_stop = ''.join(lines)
    finally:
        stop_rogue(rogue)
        memory.close()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    out = ''.join(lines)
    assert readers == {'robot_0', 'robot_2'}, out[-4000:]
    # robots 0 and 2 received the 200 MB message, robot 1 (whose topic it came on) did not
    assert max(rss[0], rss[2]) < rss[1] + 100, rss
    assert 'no round-' not in before_stop and ' lost' not in before_stop, before_stop[-4000:]


@pytest.mark.fault('two swarms on one domain')
def test_two_swarms_on_one_domain_stay_apart(tmp_path, ros_env) -> None:
    runs = []
    for name in ('a', 'b'):
        folder = tmp_path / name
        folder.mkdir()
        config = swarm_config(folder, rounds=10, graph={'type': 'cycle'})
        runs.append((folder, config, *start_swarm(config, ros_env, folder)))
        time.sleep(0.5)
    for folder, config, proc, lines in runs:
        proc.wait(timeout=320)
        assert proc.returncode == 0, ''.join(lines)[-4000:]
    for folder, config, _, lines in runs:
        assert 'another swarm' in ''.join(lines), 'the swarms never met: the test shows nothing'
        assert_equals_offline(folder, config)


def final_consensus(results: dict) -> float:
    """Return the last evaluation's mean pairwise distance between the robots' models."""
    rounds, means = plots.consensus_curve(results)
    return float(means[-1])


@pytest.mark.fault('robot killed and restarted: rejoins')
def test_a_killed_robot_restarts_and_rejoins(tmp_path, ros_env) -> None:
    config = swarm_config(
        tmp_path, rounds=600, graph={'type': 'complete'}, round_timeout=2.0, respawn=1
    )
    proc, out = kill_robot_2(config, ros_env, tmp_path, at_round=60)
    assert proc.returncode == 0, out[-4000:]
    rejoined = re.search(r'\[robot_2/robot\].*rejoins the swarm at round (\d+) from', out)
    assert rejoined and int(rejoined.group(1)) > 60, out[-4000:]
    assert 'restarting it (1 of 1)' in out
    assert re.search(r'\[monitor\].*round 600: consensus', out), out[-4000:]
    ros = torch.load(results_file(tmp_path, 'dinno'), weights_only=True)
    assert ros['lost_robots'] == [] and ros['complete'], ros['lost_robots']
    assert len(ros['consensus_error'][-1]) == 3  # the last evaluation holds all three robots
    spec = load_swarm(config)
    torch.set_num_threads(1)
    offline, _ = run_pair(spec.experiment, spec.pair_key, 'cpu', progress=False)
    assert final_consensus(ros) < 2 * final_consensus(offline), (
        final_consensus(ros),
        final_consensus(offline),
    )


@pytest.mark.fault('a process of two robots killed and restarted: both rejoin')
def test_a_killed_robots_process_restarts_and_its_robots_rejoin(tmp_path, ros_env) -> None:
    """``robots_per_process: 2``: SIGKILL the process of robots 0 and 1; respawn restarts both."""
    config = swarm_config(
        tmp_path,
        rounds=200,
        graph={'type': 'complete'},
        round_timeout=2.0,
        respawn=1,
        robots_per_process=2,
    )
    data = yaml.safe_load(config.read_text())
    data['swarm']['monitor']['lost_after'] = 4.0
    config.write_text(yaml.safe_dump(data))
    proc, lines = start_swarm(config, ros_env, tmp_path)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not any(
        re.search(r'robot_0.*round 40: train_loss', line) for line in lines
    ):
        time.sleep(0.05)
    pid = robots_pid(config, '[0, 1]')
    assert pid is not None, ''.join(lines)[-3000:]
    os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=300)
    out = ''.join(lines)
    assert proc.returncode == 0, out[-4000:]
    assert 'restarting it (1 of 1)' in out, out[-4000:]
    for robot in (0, 1):
        rejoined = re.search(rf'robot_{robot}.*rejoins the swarm at round (\d+) from', out)
        assert rejoined and int(rejoined.group(1)) > 40, out[-4000:]
    assert re.search(r'\[monitor\].*round 200: consensus', out), out[-4000:]
    ros = torch.load(results_file(tmp_path, 'dinno'), weights_only=True)
    assert ros['lost_robots'] == [] and ros['complete'], ros['lost_robots']
    assert len(ros['consensus_error'][-1]) == 3


def robots_pid(config: Path, robot_ids: str) -> int | None:
    """Return the pid of the ``robots_node`` process of ``robot_ids`` (as its -p argument)."""
    for process in psutil.process_iter(['cmdline']):
        cmd = process.info['cmdline'] or []
        if f'robot_ids:={robot_ids}' in cmd and f'config:={config}' in cmd:
            return process.pid
    return None
