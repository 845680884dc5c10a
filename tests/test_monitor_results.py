"""
A monitor that cannot lose the run (issue 11, item 4).

Its results folder is made and checked at start, the results so far are on disk after every
evaluation (atomically: a file that always loads), plots cope with robots lost and back, and a bad
message is ignored. Over DDS: a monitor SIGKILLed mid-run leaves every round it reported.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

from conftest import CONFIGS, TAG, tagged_processes, tail
from dinno_ros.core.learning import plots
from dinno_ros.core.swarm.launch_args import (
    LaunchArgumentError,
    parse_launch_arguments,
    plan_from_launch,
)
from dinno_ros.core.swarm.monitor import SwarmMonitor
from dinno_ros.core.swarm.plan import plan_swarm
from dinno_ros.core.swarm.results import ResultsDirError, ResultsWriter, save_atomic
from dinno_ros.core.swarm.spec import load_swarm
import numpy as np
import pytest
import torch
import yaml

VAL = re.compile(r'\[monitor\].*round (\d+): consensus .* \| val loss ([0-9.e+-]+)')


@pytest.fixture(scope='module')
def spec():
    return load_swarm(CONFIGS / 'tiny_swarm.yaml', rounds=6)  # evaluated: tags 0, 5 and 6


@pytest.fixture
def monitor(spec) -> SwarmMonitor:
    return SwarmMonitor(spec)


def feed(monitor: SwarmMonitor, robots, tag: int) -> None:
    """Every robot of ``robots``: its state and params vector of round ``tag``."""
    for robot in robots:
        vector = torch.full((monitor.num_params,), 0.01 * robot)
        finished = tag == monitor.spec.rounds
        monitor.put_state(robot, tag, np.array([1.0 + robot, 1.0, 0.0]), tag, finished)
        monitor.put_vector(robot, tag, vector)


def test_the_folder_and_configs_are_written_at_start(spec, tmp_path) -> None:
    writer = ResultsWriter(spec, tmp_path / 'a' / 'b')
    out = writer.start()
    assert out.parent == tmp_path / 'a' / 'b' and out.name.endswith(spec.experiment.name)
    assert (out / 'experiment_resolved.yaml').is_file() and (out / 'tiny_swarm.yaml').is_file()
    assert not writer.path.exists()  # no results before the first evaluation


def test_every_evaluation_leaves_a_loadable_file(spec, monitor, tmp_path) -> None:
    writer = ResultsWriter(spec, tmp_path)
    writer.start()
    evaluated = []
    for tag in range(spec.rounds + 1):
        feed(monitor, range(3), tag)
        for report in monitor.process():
            if report.evaluation is None:
                continue
            evaluated.append(report.round_k)
            assert writer.update(monitor.results()) == writer.path
            saved = torch.load(writer.path, weights_only=True)
            assert saved['evaluation_rounds'] == evaluated
            assert len(saved['validation_loss']) == len(evaluated)
            assert saved['evaluation_robots'] == [[0, 1, 2]] * len(evaluated)
            assert saved['rounds_reported'] == report.round_k
            assert saved['complete'] == (report.round_k == spec.rounds)  # the last round in
            assert not saved['monitor_finished']
            assert saved['source'] == 'ros_swarm' and saved['alg_name'] == spec.pair.alg_name
    assert evaluated == [0, 5, 6]
    assert [p.name for p in writer.path.parent.glob('.*')] == []  # no temporary left
    out = writer.finish({**monitor.results(), 'interrupted': False})
    final = torch.load(writer.path, weights_only=True)
    assert final['complete'] and final['monitor_finished'] and final['rounds_reported'] == 6
    assert (out / 'validation_loss_consensus.png').is_file()


def test_a_save_that_fails_midway_keeps_the_last_whole_file(tmp_path, monkeypatch) -> None:
    path = tmp_path / 'x_results.pt'
    save_atomic({'evaluation_rounds': [0]}, path)

    def half_then_fail(obj, f) -> None:
        f.write(b'PK\x03\x04 half a zip')
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(torch, 'save', half_then_fail)
    with pytest.raises(OSError, match='No space'):
        save_atomic({'evaluation_rounds': [0, 5]}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {'evaluation_rounds': [0]}
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


@pytest.mark.parametrize('inside', [False, True], ids=['is-a-file', 'under-a-file'])
def test_a_results_dir_that_is_a_file_fails_at_start(spec, tmp_path, inside) -> None:
    blocker = tmp_path / 'results'
    blocker.write_text('not a folder')
    root = blocker / 'swarm' if inside else blocker
    with pytest.raises(ResultsDirError) as err:
        ResultsWriter(spec, root).start()
    message = str(err.value)
    assert '\n' not in message and str(root) in message and 'a file, not a folder' in message
    assert message.startswith('results_dir: ')
    with pytest.raises(ResultsDirError, match=re.escape(f'--results-dir: {root}')):
        plan_swarm(CONFIGS / 'tiny_swarm.yaml', results_dir=root)
    plan_swarm(CONFIGS / 'tiny_swarm.yaml', results_dir=root, monitor=False)  # no monitor here
    launch = {'config': str(CONFIGS / 'tiny_swarm.yaml'), 'results_dir': str(root)}
    with pytest.raises(LaunchArgumentError, match=re.escape(f'results_dir: {root}')):
        plan_from_launch(parse_launch_arguments(launch))
    assert [p.name for p in tmp_path.iterdir()] == ['results']


def test_writeout_false_checks_and_writes_nothing(tmp_path) -> None:
    data = yaml.safe_load((CONFIGS / 'tiny_swarm.yaml').read_text())
    data['swarm']['monitor']['writeout'] = False
    config = tmp_path / 'swarm.yaml'
    config.write_text(yaml.safe_dump(data))
    plan_swarm(config, results_dir=config)  # a file, but nothing will be written there
    assert [p.name for p in tmp_path.iterdir()] == ['swarm.yaml']


@pytest.mark.skipif(os.geteuid() == 0, reason='root may write in any folder')
def test_a_results_dir_that_is_not_writable_fails_at_start(spec, tmp_path) -> None:
    locked = tmp_path / 'locked'
    locked.mkdir(mode=0o500)
    with pytest.raises(ResultsDirError, match='not writable'):
        ResultsWriter(spec, locked / 'results').start()


def test_the_runner_refuses_a_results_dir_that_is_a_file(tmp_path) -> None:
    blocker = tmp_path / 'taken'
    blocker.write_text('')
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, '-m', 'dinno_ros.swarm', str(CONFIGS / 'tiny_swarm.yaml')]
        + ['--results-dir', str(blocker)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, 'ROS_DOMAIN_ID': '0'},
    )
    took = time.monotonic() - t0
    assert proc.returncode != 0, proc.stdout + proc.stderr
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    assert len(lines) == 1 and str(blocker) in lines[0] and 'not a folder' in lines[0], lines
    assert took < 30, took


def test_messages_outside_the_run_are_ignored(spec, monitor) -> None:
    good = torch.zeros(monitor.num_params)
    monitor.put_vector(999, 0, good)
    monitor.put_vector(-1, 0, good)
    monitor.put_vector(0, spec.rounds + 1, good)
    monitor.put_vector(0, 10**9, good)
    monitor.put_vector(0, -1, good)
    monitor.put_vector(0, 0, torch.zeros(monitor.num_params + 1))
    monitor.put_state(999, 0, np.zeros(3), 0, True)
    monitor.put_state(0, spec.rounds + 1, np.zeros(3), 0, True)
    monitor.put_state(0, 0, np.zeros(5), 0, True)
    assert monitor.ignored == {'vector': 6, 'state': 3}
    assert not monitor.vectors and not monitor.poses and not monitor.latest_tag
    assert not monitor.finished and not monitor.last_seen
    assert monitor.process() == [] and not monitor.done()
    for tag in range(spec.rounds + 1):  # the run itself goes on as if nothing had come
        feed(monitor, range(3), tag)
        monitor.put_vector(999, tag, good)
        monitor.put_state(1, tag + spec.rounds + 1, np.zeros(3), tag, False)
    reports = monitor.process()
    assert [r.round_k for r in reports] == list(range(spec.rounds + 1))
    assert all(r.robots == [0, 1, 2] for r in reports) and monitor.skipped == []
    assert monitor.done() and monitor.results()['complete']
    assert monitor.rounds_completed() == {0: 6, 1: 6, 2: 6}


def lost_and_back() -> dict:
    """Return a results dict whose per-robot rows have 3, 2 (robot 1 lost), 1, 3 (back) robots."""
    robots = [[0, 1, 2], [0, 2], [2], [0, 1, 2]]
    rows, cols = 6, 8
    metrics: dict = {'evaluation_rounds': [0, 5, 10, 15], 'evaluation_robots': robots}
    for name in ('validation_loss', 'validation_nll', 'top1_accuracy', 'current_epoch'):
        metrics[name] = [torch.rand(len(r), dtype=torch.float64) for r in robots]
    metrics['train_loss_moving_average'] = [torch.rand(len(r)) for r in robots]
    metrics['consensus_error'] = [torch.rand(len(r), len(r)).fill_diagonal_(0) for r in robots]
    metrics['map_iou'] = [torch.rand(len(r), 6) for r in robots]
    metrics['current_position'] = [torch.rand(len(r), 3) for r in robots]
    metrics['wire_bytes'] = [torch.randint(0, 10**6, (len(r), 2)) for r in robots]
    metrics['mesh_grid_density'] = [torch.rand(len(r), rows, cols) for r in robots]
    metrics['forward_pass_count'] = [0, 10, 20, 30]
    metrics['true_mesh'] = torch.zeros(rows, cols)
    return metrics


@pytest.mark.parametrize('problem', ['density', 'mnist'])
def test_plots_cope_with_robots_lost_and_back(tmp_path, problem) -> None:
    metrics = lost_and_back()
    files = plots.plot_experiment({'dinno': metrics, 'other': lost_and_back()}, tmp_path, problem)
    metric = 'top1_accuracy' if problem == 'mnist' else 'validation_loss'
    expected = {f'{metric}_consensus.png', f'{metric}_per_megabyte.png'}
    if problem == 'density':
        expected.add('learned_map.png')
    assert {f.name for f in files} == expected
    assert all((tmp_path / name).stat().st_size > 0 for name in expected)
    rounds, mean, low, high = plots.metric_band(metrics, metric)
    assert list(rounds) == [0, 5, 10, 15] and (low <= mean).all() and (mean <= high).all()
    assert low[2] == high[2]  # one robot left: its value is the band
    assert (
        len(plots.consensus_curve(metrics)[1]) == 4 and plots.consensus_curve(metrics)[1][2] == 0
    )
    # robot 0 was not in the last-but-one evaluation; in the last it is row 0 again
    assert plots._learned_row(metrics, 3, 1) == (1, 1)
    metrics['evaluation_robots'][-1] = [1, 2, 4]
    assert plots._learned_row(metrics, 3, 0) == (0, 1)  # robot 0 absent: the first robot's


def test_plots_of_a_file_written_mid_run(tmp_path) -> None:
    """Rows without robots, rounds not yet listed, no maps yet: still plots."""
    metrics = lost_and_back()
    metrics['validation_loss'].append(torch.zeros(0))
    metrics['consensus_error'].append(torch.zeros(0, 0))
    metrics['mesh_grid_density'] = []
    files = plots.plot_experiment({'dinno': metrics}, tmp_path, 'density')
    assert [f.name for f in files] == ['validation_loss_consensus.png']
    rounds, mean, _, _ = plots.metric_band(metrics, 'validation_loss')
    assert np.isnan(rounds[-1]) and np.isnan(mean[-1])


def monitor_process(env: dict[str, str]):
    """Return the monitor node process of this test's swarm, or None."""
    for proc in tagged_processes(env[TAG]):
        try:
            if 'dinno_ros.ros.monitor_node' in proc.cmdline():
                return proc
        except Exception:
            continue
    return None


@pytest.mark.dds
def test_a_monitor_node_with_a_file_as_results_dir_says_so_and_exits(processes, tmp_path) -> None:
    blocker = tmp_path / 'results'
    blocker.write_text('')
    code, out = processes.run(
        [sys.executable, '-m', 'dinno_ros.ros.monitor_node', '--ros-args']
        + ['-p', f'config:={CONFIGS / "tiny_swarm.yaml"}', '-p', f'results_dir:={blocker}'],
        timeout=60,
    )
    assert code == 1, out
    assert 'Traceback' not in out and 'consensus' not in out, out
    errors = [line for line in out.splitlines() if str(blocker) in line]
    assert len(errors) == 1 and 'cannot start' in errors[0] and 'not a folder' in errors[0], out


@pytest.mark.dds
@pytest.mark.fault('monitor killed mid-run')
def test_a_killed_monitor_leaves_every_round_it_reported(tmp_path, ros_env) -> None:
    from test_swarm_lidar import results_file, start_swarm, swarm_config

    config = swarm_config(tmp_path, rounds=40, graph={'type': 'complete'})
    data = yaml.safe_load(config.read_text())
    data['swarm']['monitor']['evaluate_frequency'] = 3
    config.write_text(yaml.safe_dump(data))
    proc, lines = start_swarm(config, ros_env, tmp_path)
    try:
        deadline = time.monotonic() + 90
        while len(VAL.findall(''.join(lines))) < 2:  # two evaluations logged (so: on disk)
            assert proc.poll() is None and time.monotonic() < deadline, tail(lines)
            time.sleep(0.05)
        monitor = monitor_process(ros_env)
        assert monitor is not None, tail(lines)
        monitor.send_signal(signal.SIGKILL)  # the runner reaps it
        code = proc.wait(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    time.sleep(0.2)  # the reader takes the last lines
    out = ''.join(lines)
    reported = {int(m[1]): float(m[2]) for m in VAL.finditer(out)}
    assert len(reported) >= 2 and not re.search(r'\[monitor\].*round 40: consensus', out), out
    results = torch.load(results_file(tmp_path, 'dinno'), weights_only=True)
    assert not results['complete'] and not results['monitor_finished']
    saved = dict(zip(results['evaluation_rounds'], results['validation_loss']))
    assert set(reported) <= set(saved), (reported, results['evaluation_rounds'])
    for tag, loss in reported.items():
        assert float(saved[tag].mean()) == pytest.approx(loss, abs=1e-4), tag
    assert code != 0
    assert 'monitor (exit -9)' in ''.join(lines[-3:]), tail(lines, 5)
    # the robots noticed the monitor gone and kept their own final weights and summaries
    finals = sorted(tmp_path.glob('results/robots_*/robot_*.pt'))
    assert len(finals) == 3, tail(lines)
    for i, path in enumerate(finals):
        final = torch.load(path, weights_only=True)
        assert final['summary']['robot_id'] == i and final['summary']['rounds_completed'] == 40
        assert torch.isfinite(final['params']).all()
