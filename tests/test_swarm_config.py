"""A bad swarm config fails before any node starts, with an error that names the key."""

from __future__ import annotations

from pathlib import Path
import subprocess
import sys

from conftest import CONFIGS, REPO
from dinno_ros.core.learning.experiment_config import load_experiment
from dinno_ros.core.swarm.plan import plan_swarm
from dinno_ros.core.swarm.spec import load_swarm
import pytest
import yaml

BASE = yaml.safe_load((CONFIGS / 'tiny_swarm.yaml').read_text())


def write(tmp_path: Path, edit) -> Path:
    data = yaml.safe_load(yaml.safe_dump(BASE))
    edit(data)
    path = tmp_path / 'swarm.yaml'
    path.write_text(yaml.safe_dump(data))
    return path


CASES = {
    'unknown key': (lambda d: d['experiment']['lidar'].update(bogus=3), 'experiment.lidar.bogus'),
    'unknown swarm key': (lambda d: d['swarm'].update(robots_per_host=2), 'swarm.robots_per_host'),
    'zero robots': (
        lambda d: d['experiment']['graph'].update(num_nodes=0),
        'experiment.graph.num_nodes',
    ),
    'missing map file': (
        lambda d: d['experiment'].update(map={'path': 'no_such_map.yaml'}),
        'experiment.map.path',
    ),
    'wrong type': (
        lambda d: d['experiment']['routes'].update(speed='fast'),
        'experiment.routes.speed',
    ),
    'wrong swarm type': (lambda d: d['swarm'].update(round_timeout='soon'), 'swarm.round_timeout'),
    'no robots per process': (
        lambda d: d['swarm'].update(robots_per_process=0),
        'swarm.robots_per_process',
    ),
    'late message not a triple': (
        lambda d: d['swarm'].update(late_messages=[[1, 0]]),
        'swarm.late_messages',
    ),
    'late message from no robot': (
        lambda d: d['swarm'].update(late_messages=[[7, 0, 2]]),
        'swarm.late_messages',
    ),
    'unknown optimizer': (
        lambda d: d['problem_configs']['average']['optimizer_config'].update(alg_name='adamm'),
        'problem_configs.average.optimizer_config.alg_name',
    ),
}


@pytest.mark.parametrize('case', list(CASES))
def test_bad_config_names_the_key(tmp_path, case):
    edit, key = CASES[case]
    with pytest.raises((ValueError, FileNotFoundError), match=key.replace('.', r'\.')):
        plan_swarm(write(tmp_path, edit))


def test_bad_overrides_name_the_option():
    with pytest.raises(ValueError, match='--num-robots'):
        plan_swarm(CONFIGS / 'tiny_swarm.yaml', num_robots=0)
    with pytest.raises(ValueError, match='--robots'):
        plan_swarm(CONFIGS / 'tiny_swarm.yaml', robots=[0, 7])


@pytest.mark.dds  # the runner process, with the ros_env of a DDS test
def test_runner_fails_before_any_node_starts(tmp_path, ros_env):
    bad = write(tmp_path, CASES['missing map file'][0])
    proc = subprocess.run(
        [sys.executable, '-m', 'dinno_ros.swarm', str(bad)],
        env=ros_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert 'experiment.map.path' in proc.stderr
    assert (
        '[robot_' not in proc.stdout + proc.stderr and '[monitor]' not in proc.stdout + proc.stderr
    )


def test_plan_lists_robots_and_monitor():
    plan = plan_swarm(CONFIGS / 'tiny_swarm.yaml', num_robots=4, rounds=7, robots=[1, 3])
    labels = [n.label for n in plan.nodes]
    assert labels == ['robot_1/robot', 'robot_3/robot', 'monitor']
    robot = plan.nodes[0]
    assert robot.parameters == {
        'config': str(plan.spec.path),
        'num_robots': 4,
        'rounds': 7,
        'robot_id': 1,
        'wait_for_monitor': True,
        'results_dir': '',  # where a robot keeps its final weights if no monitor reports them
    }
    assert robot.ros_args()[:5] == ['--ros-args', '-r', '__node:=robot', '-r', '__ns:=/robot_1']
    assert plan.spec.rounds == 7 and plan.spec.num_robots == 4


def test_robots_share_processes_as_asked(tmp_path):
    config = write(tmp_path, lambda d: d['swarm'].update(robots_per_process=3))
    plan = plan_swarm(config, num_robots=7, robots=[0, 1, 2, 3, 5, 6])
    groups = [n for n in plan.nodes if n.robots]
    assert [n.robots for n in groups] == [(0, 1, 2), (3, 5, 6)]
    assert {n.executable for n in groups} == {'robots_node'}
    assert [n.label for n in groups] == ['robots_0_to_2', 'robots_3_to_6']
    args = groups[1].ros_args()
    assert '__node' not in ' '.join(args) and '__ns' not in ' '.join(args)  # they name themselves
    assert 'robot_ids:=[3, 5, 6]' in args and 'robot_id' not in groups[1].parameters
    assert plan.nodes[-1].label == 'monitor' and not plan.nodes[-1].robots


SHIPPED = sorted((REPO / 'config').glob('*.yaml')) + sorted(
    (REPO / 'config' / 'experiments').glob('*.yaml')
)


@pytest.mark.parametrize('path', SHIPPED, ids=lambda p: p.name)
def test_shipped_configs_validate(path: Path) -> None:
    """Every config the package ships validates, optimizer keys included (nothing runs)."""
    config = load_swarm(path).experiment if path.parent.name == 'config' else load_experiment(path)
    assert config.pairs
