"""
The lidar swarm end to end: real robot and monitor processes over DDS.

Checked: the RViz topics, the results, the equivalence with the offline runner, and a robot
killed mid-run.
"""

from __future__ import annotations

import os
from pathlib import Path
import re
import signal
import subprocess
import sys
import threading
import time

from conftest import CONFIGS, REPO
from dinno_ros.core.learning.experiment import run_pair
from dinno_ros.core.swarm.spec import load_swarm
from dinno_ros.tools.rviz_config import expected_topics
import pytest
import torch
import yaml

rclpy = pytest.importorskip('rclpy')

pytestmark = pytest.mark.dds  # robot and monitor processes over DDS

CONSENSUS = re.compile(r'\[monitor\].*round (\d+): consensus ([0-9.e+-]+) - ([0-9.e+-]+)')
VAL = re.compile(r'\[monitor\].*round (\d+): consensus .* \| val loss ([0-9.e+-]+)')


CHOCO = {  # Choco-SGD sending the top 10% of its update, 4-bit QSGD in the test's second case
    'alg_name': 'choco',
    'alpha0': 0.05,
    'mu': 0.0,
    'gamma': 0.3,
    'compression': {'kind': 'top_k', 'fraction': 0.1},
}
TRACKED = {  # DiNNO whose robots also send a gradient tracker (two vectors a message)
    'alg_name': 'dinno',
    'rho_init': 0.01,
    'rho_scaling': 1.008,
    'primal_iterations': 3,
    'primal_lr_start': 0.01,
    'primal_lr_finish': 0.002,
    'persistant_primal_opt': True,
    'dual_step': 0.01,
    'primal_step': 'tracked',
}


def swarm_config(
    tmp_path: Path, rounds: int, graph: dict, optimizer: dict | None = None, **swarm
) -> Path:
    """
    tiny_swarm.yaml with a DiNNO pair, written into tmp_path (results go there too).

    ``optimizer`` replaces the pair's DiNNO ``optimizer_config`` (rounds added).
    """
    data = yaml.safe_load((CONFIGS / 'tiny_swarm.yaml').read_text())
    data['experiment']['graph'] = {'num_nodes': 3, **graph}
    data['swarm'].update(pair='dinno', **swarm)
    data['swarm']['monitor'].update(evaluate_frequency=0, results_dir=str(tmp_path / 'results'))
    data['problem_configs']['dinno'] = {
        'problem_name': 'dinno',
        'train_batch_size': 256,
        'val_batch_size': 4096,
        'evaluate_frequency': 5,
        'metrics': ['forward_pass_count', 'validation_loss', 'consensus_error', 'map_iou'],
        'optimizer_config': {
            'alg_name': 'dinno',
            'outer_iterations': rounds,
            'rho_init': 0.3,
            'rho_scaling': 1.0004,
            'primal_iterations': 3,
            'primal_optimizer': 'adam',
            'primal_lr_start': 0.01,
            'primal_lr_finish': 0.002,
            'lr_decay_type': 'log',
        },
    }
    if optimizer is not None:
        pair = data['problem_configs']['dinno']
        pair['optimizer_config'] = {**optimizer, 'outer_iterations': rounds}
        pair['metrics'].append('wire_bytes')
    path = tmp_path / 'swarm.yaml'
    path.write_text(yaml.safe_dump(data))
    return path


def start_swarm(
    config: Path, env: dict, cwd: Path, *args: str
) -> tuple[subprocess.Popen, list[str]]:
    proc = subprocess.Popen(
        [sys.executable, '-m', 'dinno_ros.swarm', str(config), '--timeout', '300', *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    threading.Thread(
        target=lambda: lines.extend(iter(proc.stdout.readline, '')), daemon=True
    ).start()
    return proc, lines


def live_topics(domain_id: int, until, timeout: float) -> dict[str, set[str]]:
    """
    Topic -> types seen on the ROS graph while ``until()`` is false.

    Polling; the union of everything seen.
    """
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain_id)
    node = rclpy.create_node('graph_probe', context=context)
    seen: dict[str, set[str]] = {}
    deadline = time.monotonic() + timeout
    try:
        while not until() and time.monotonic() < deadline:
            for name, types in node.get_topic_names_and_types():
                seen.setdefault(name, set()).update(types)
            time.sleep(0.5)
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)
    return seen


def metrics_bytes(domain_id: int, until, timeout: float) -> dict[int, tuple]:
    """Round -> (robot ids, bytes sent, bytes received, megabytes) of /swarm/metrics."""
    from dinno_msgs.msg import SwarmMetrics
    from dinno_ros.ros import qos
    from rclpy.executors import SingleThreadedExecutor

    got: dict[int, tuple] = {}

    def keep(msg) -> None:
        sent, received = list(msg.robot_bytes_sent), list(msg.robot_bytes_received)
        got[int(msg.round)] = (list(msg.robot_ids), sent, received, msg.megabytes_sent)

    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain_id)
    node = rclpy.create_node('metrics_probe', context=context)
    node.create_subscription(SwarmMetrics, '/swarm/metrics', keep, qos.metrics())
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    deadline = time.monotonic() + timeout
    try:
        while not until() and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.2)
        for _ in range(10):  # what is still queued
            executor.spin_once(timeout_sec=0.1)
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)
    return got


def results_file(tmp_path: Path, name: str) -> Path:
    files = sorted((tmp_path / 'results').glob(f'*/{name}_results.pt'))
    assert files, f'no results under {tmp_path / "results"}'
    return files[-1]


def test_lidar_swarm_learns_and_shows_what_rviz_expects(tmp_path, ros_env):
    config = swarm_config(tmp_path, rounds=30, graph={'type': 'disk', 'comm_radius': 6.0})
    proc, lines = start_swarm(config, ros_env, tmp_path)
    seen = live_topics(int(ros_env['ROS_DOMAIN_ID']), lambda: proc.poll() is not None, timeout=300)
    proc.wait(timeout=60)
    out = ''.join(lines)
    assert proc.returncode == 0, out[-4000:]

    rviz = yaml.safe_load((REPO / 'rviz' / 'swarm.rviz').read_text())
    wanted = {
        t: ty
        for t, ty in expected_topics(rviz).items()
        if not (m := re.match(r'/robot_(\d+)/', t)) or int(m[1]) < 3
    }
    for topic, msg_type in wanted.items():
        assert topic in seen, f'{topic} never appeared; live topics: {sorted(seen)}'
        assert msg_type in seen[topic], (topic, seen[topic])

    consensus = {int(m[1]): float(m[3]) for m in CONSENSUS.finditer(out)}
    assert sorted(consensus) == list(range(31))
    assert consensus[30] < 0.5 * consensus[0], consensus
    val = [float(m[2]) for m in VAL.finditer(out)]
    assert len(val) == 7 and val[-1] < val[0], val  # the initial models, then every 5 rounds

    results = torch.load(results_file(tmp_path, 'dinno'), weights_only=True)
    assert results['evaluation_rounds'] == [0, 5, 10, 15, 20, 25, 30]
    assert len(results['validation_loss']) == 7 and results['lost_robots'] == []
    assert list(tmp_path.glob('results/*/validation_loss_consensus.png'))


@pytest.mark.parametrize(
    'late, optimizer, per_process, executor',
    [
        ([], None, 1, 'events'),
        ([[1, 0, 3]], None, 1, 'events'),
        ([], CHOCO, 1, 'events'),
        ([], {**CHOCO, 'compression': {'kind': 'qsgd', 'levels': 7}}, 1, 'events'),
        ([], {**CHOCO, 'gossip_steps': 2}, 1, 'events'),
        ([], None, 2, 'events'),
        ([], TRACKED, 1, 'events'),
        ([], None, 2, 'single'),
    ],
    ids=[
        'on-time',
        'late',
        'choco-top-k',
        'choco-qsgd',
        'choco-gossip-steps',
        'two-robots-per-process',
        'dinno-tracked',
        'single-threaded-executor',
    ],
)
def test_ros_swarm_matches_the_offline_runner(
    tmp_path, ros_env, late, optimizer, per_process, executor
):
    """
    Same config and seed on CPU, static graph: the same consensus and val loss as offline.

    With every message on time, and with robot 1's round-3 message held back from robot 0 until
    robot 0's round 3 is over (injected lateness: robot 0 steps with robot 1's round-2 message;
    the offline runner injects the same). Choco-SGD's compressed messages decode to the same
    values, and its robots count the same bytes, as offline, also with gossip-only rounds between
    its gradient steps. Robots 0 and 1 sharing one process
    (``robots_per_process: 2``) change nothing either; nor does a second vector in every message
    (DiNNO's gradient tracker, ``primal_step: tracked``: twice the bytes); nor does rclpy's
    SingleThreadedExecutor instead of its events executor (``DINNO_EXECUTOR``; rclpy before Kilted
    has only the former).
    """
    ros_env['DINNO_EXECUTOR'] = executor
    config = swarm_config(
        tmp_path,
        rounds=10,
        graph={'type': 'cycle'},
        optimizer=optimizer,
        late_messages=late,
        robots_per_process=per_process,
    )
    proc, lines = start_swarm(config, ros_env, tmp_path)
    on_air = metrics_bytes(int(ros_env['ROS_DOMAIN_ID']), lambda: proc.poll() is not None, 320)
    proc.wait(timeout=60)
    out = ''.join(lines)
    (tmp_path / 'swarm.log').write_text(out)  # for a failure's post-mortem
    assert proc.returncode == 0, out[-4000:]
    assert ('no round-3 message in time from robot_1 (round 2)' in out) == bool(late), out[-4000:]
    nodes = 4 if per_process == 1 else 3  # robots 0 and 1 in one process, robot 2 in another
    spinning = 'spinning EventsExecutor' if executor == 'events' else 'spinning SingleThreaded'
    assert out.count(spinning) == nodes, out[-4000:]
    assert f'all {nodes} nodes exited 0' in out and out.count('finished 10 rounds') == 3
    consensus = {int(m[1]): float(m[3]) for m in CONSENSUS.finditer(out)}
    assert sorted(consensus) == list(range(11))
    assert optimizer is not None or consensus[10] < 0.5 * consensus[0]  # DiNNO agrees quickly
    ros = torch.load(results_file(tmp_path, 'dinno'), weights_only=True)

    spec = load_swarm(config)
    torch.set_num_threads(1)
    offline, _ = run_pair(
        spec.experiment,
        spec.pair_key,
        'cpu',
        progress=False,
        late=spec.section.late_messages,
        runner='per_robot',  # the robot node's own step, exactly
        lost_after_rounds=spec.section.lost_after_rounds,
    )
    assert ros['evaluation_rounds'] == offline['evaluation_rounds'] == [0, 5, 10]
    for a, b in zip(ros['validation_loss'], offline['validation_loss']):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6), (a, b)
    for a, b in zip(ros['consensus_error'], offline['consensus_error']):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6), (a, b)
    assert ros['forward_pass_count'] == offline['forward_pass_count']
    for a, b in zip(ros['map_iou'], offline['map_iou']):  # the same coverage, the same maps
        assert torch.allclose(a, b, atol=1e-6), (a, b)
    assert ros['map_iou_columns'][0] == 'miou_seen' and 0.0 < float(ros['map_iou'][-1][0, 0])
    if optimizer is not None:
        assert len(ros['wire_bytes']) == 3 and int(ros['wire_bytes'][-1][0, 0]) > 0
        for a, b in zip(ros['wire_bytes'], offline['wire_bytes']):
            assert torch.equal(a, b), (a, b)
        # SwarmMetrics as received over DDS, at the last evaluation round the probe heard (a
        # 10-round Choco run can end before the probe discovers the monitor: then none)
        for tag in [t for t in (5, 10) if t in on_air][-1:]:
            ids, sent, received, megabytes = on_air[tag]
            expected = offline['wire_bytes'][offline['evaluation_rounds'].index(tag)]
            assert ids == [0, 1, 2] and [sent, received] == expected.T.tolist()
            assert megabytes == pytest.approx(sum(sent) / 1e6)


def robot_pid(config: Path, robot: int) -> int | None:
    for pid in os.listdir('/proc'):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f'/proc/{pid}/cmdline').read_bytes().split(b'\0')
        except OSError:
            continue
        if f'__ns:=/robot_{robot}'.encode() in cmd and f'config:={config}'.encode() in cmd:
            return int(pid)
    return None


def kill_robot_2(config: Path, ros_env, tmp_path: Path, at_round: int):
    """
    Run the swarm (monitor.lost_after 4 s), SIGKILL robot 2 once it logs ``at_round``.

    Return the runner process, ended, and its output.
    """
    data = yaml.safe_load(config.read_text())
    data['swarm']['monitor']['lost_after'] = 4.0
    config.write_text(yaml.safe_dump(data))
    proc, lines = start_swarm(config, ros_env, tmp_path)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not any(  # robot 2 is under way: kill it
        re.search(rf'\[robot_2/robot\].*round {at_round}: train_loss', line) for line in lines
    ):
        time.sleep(0.05)
    pid = robot_pid(config, 2)
    assert pid is not None, ''.join(lines)[-3000:]
    os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=300)
    (tmp_path / 'swarm.log').write_text(''.join(lines))  # for a failure's post-mortem
    return proc, ''.join(lines)


@pytest.mark.fault('robot killed for good')
def test_killed_robot_does_not_stall_the_swarm(tmp_path, ros_env):
    config = swarm_config(tmp_path, rounds=300, graph={'type': 'complete'}, round_timeout=2.0)
    proc, out = kill_robot_2(config, ros_env, tmp_path, at_round=30)
    assert '[robot_0/robot]' in out and out.count('finished 300 rounds') == 2, out[-4000:]
    assert re.search(r'\[monitor\].*robot_2 lost', out), out[-4000:]
    assert re.search(r'\[monitor\].*round 300: consensus', out), out[-4000:]
    assert 'robot_2/robot (exit -9)' in out  # the runner says which node failed ...
    assert proc.returncode == 1  # ... and exits non-zero
    results = torch.load(results_file(tmp_path, 'dinno'), weights_only=True)
    assert results['lost_robots'] == [2]
    assert 'Traceback' not in out, out[-4000:]
    assert list(tmp_path.glob('results/*/validation_loss_consensus.png'))  # 3 robots, then 2
