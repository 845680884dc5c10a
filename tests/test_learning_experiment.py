"""
The experiment YAML (seed format) and the offline round loop.

Also the per-robot builders and the runner.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

from conftest import REPO
from dinno_ros.core.learning import plots, registry
from dinno_ros.core.learning.build import build_agent, build_agents, build_problem
from dinno_ros.core.learning.evaluator import Evaluator
from dinno_ros.core.learning.experiment import run_experiment
from dinno_ros.core.learning.experiment_config import load_experiment, parse_experiment
from dinno_ros.core.learning.round import RoundGraph
from dinno_ros.core.learning.simulation import OfflineSwarm, run_rounds
from dinno_ros.tools.experiment_cli import main as experiment_main
import pytest
import torch
import yaml

# The research code's MNIST experiment YAML, every key it had (primal_lr and profile included).
SEED_YAML = {
    'experiment': {
        'name': 'dist_cnn_seed',
        'data_dir': '../data/',
        'output_metadir': './outputs/',
        'writeout': False,
        'data_split_type': 'hetero',
        'loss': 'NLL',
        'graph': {'num_nodes': 5, 'type': 'wheel', 'p': 0.6, 'gen_attempts': 10},
        'model': {'num_filters': 3, 'kernel_size': 5, 'linear_width': 64},
    },
    'problem_configs': {
        'problem1': {
            'problem_name': 'dinno',
            'train_batch_size': 64,
            'val_batch_size': 128,
            'evaluate_frequency': 20,
            'verbose_evals': True,
            'metrics': [
                'forward_pass_count',
                'validation_loss',
                'consensus_error',
                'top1_accuracy',
                'current_epoch',
            ],
            'optimizer_config': {
                'alg_name': 'dinno',
                'rho_init': 1.0,
                'rho_scaling': 1.0,
                'outer_iterations': 30,
                'primal_iterations': 5,
                'primal_optimizer': 'adam',
                'primal_lr': 0.005,
                'profile': False,
            },
        },
        'problem2': {
            'problem_name': 'dsgd',
            'train_batch_size': 64,
            'val_batch_size': 128,
            'evaluate_frequency': 20,
            'verbose_evals': True,
            'metrics': ['validation_loss', 'consensus_error', 'top1_accuracy'],
            'optimizer_config': {
                'alg_name': 'dsgd',
                'alpha0': 0.005,
                'mu': 0.001,
                'outer_iterations': 30,
            },
        },
        'problem3': {
            'problem_name': 'dsgt',
            'train_batch_size': 64,
            'val_batch_size': 128,
            'evaluate_frequency': 20,
            'verbose_evals': False,
            'metrics': ['validation_loss', 'top1_accuracy'],
            'optimizer_config': {
                'alg_name': 'dsgt',
                'alpha': 0.005,
                'init_grads': True,
                'outer_iterations': 30,
            },
        },
    },
}


def tiny_lidar(rounds: int = 24, writeout: bool = True, out: str = 'results') -> dict:
    """
    Build a tiny lidar experiment on a small generated apartment.

    3 robots, a disk graph, three pairs.
    """
    metrics = [
        'forward_pass_count',
        'train_loss_moving_average',
        'validation_loss',
        'consensus_error',
        'mesh_grid_density',
        'current_epoch',
        'current_position',
        'current_graph',
    ]
    pair = {
        'train_batch_size': 256,
        'val_batch_size': 2000,
        'evaluate_frequency': 8,
        'verbose_evals': True,
        'metrics': metrics,
    }
    return {
        'experiment': {
            'name': 'tiny_lidar',
            'output_metadir': out,
            'writeout': writeout,
            'seed': 1,
            'device': 'cpu',
            'map': {
                'generate': 'apartment',
                'generate_seed': 2,
                'size_m': [10.0, 8.0],
                'resolution': 0.1,
            },
            'model': {'shape': [2, 64, 32, 1], 'scale': 0.5},
            'loss': 'BCE',
            'lidar': {'num_beams': 16, 'beam_samps': 10, 'beam_length': 0.3},
            'routes': {
                'overlap': 'some',
                'waypoints_per_robot': 3,
                'speed': 1.0,
                'dt': 0.3,
                'robot_radius': 0.2,
            },
            'dataset': {'window': 40},
            'validation': {'num_scans': 40},
            'mesh_stride': 2,
            'graph': {'num_nodes': 3, 'type': 'disk', 'comm_radius': 8.0},
        },
        'problem_configs': {
            'dinno': {
                **pair,
                'problem_name': 'dinno',
                'optimizer_config': {
                    'alg_name': 'dinno',
                    'rho_init': 0.3,
                    'rho_scaling': 1.0004,
                    'outer_iterations': rounds,
                    'primal_iterations': 2,
                    'primal_optimizer': 'adam',
                    'primal_lr_start': 0.01,
                    'primal_lr_finish': 0.003,
                    'lr_decay_type': 'log',
                },
            },
            'dsgd': {
                **pair,
                'problem_name': 'dsgd',
                'optimizer_config': {
                    'alg_name': 'dsgd',
                    'alpha0': 0.05,
                    'mu': 0.001,
                    'outer_iterations': rounds,
                },
            },
            'dsgt': {
                **pair,
                'problem_name': 'dsgt',
                'optimizer_config': {
                    'alg_name': 'dsgt',
                    'alpha': 0.05,
                    'init_grads': True,
                    'outer_iterations': rounds,
                },
            },
        },
    }


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_seed_yaml_keys_round_trip(tmp_path):
    first = load_experiment(write_yaml(tmp_path / 'seed.yaml', SEED_YAML))
    assert (
        first.problem == 'mnist'
        and first.num_nodes == 5
        and list(first.pairs) == ['problem1', 'problem2', 'problem3']
    )
    assert (
        first.pair('problem1').rounds == 30
        and first.pair('problem1').optimizer_config['primal_lr'] == 0.005
    )
    dumped = tmp_path / 'dumped.yaml'
    first.dump(dumped)
    second = load_experiment(dumped)
    assert second == first
    data = yaml.safe_load(dumped.read_text())
    for key, value in SEED_YAML['experiment'].items():  # every seed key survives with its meaning
        if key == 'data_dir':
            assert Path(data['experiment'][key]) == (tmp_path / value).resolve()
        elif isinstance(value, dict):
            assert {k: data['experiment'][key][k] for k in value} == value
        else:
            assert data['experiment'][key] == value
    for key, pair in SEED_YAML['problem_configs'].items():
        got = data['problem_configs'][key]
        for k, v in pair.items():
            if k == 'optimizer_config':
                assert {kk: got[k][kk] for kk in v if kk != 'profile'} == {
                    kk: vv for kk, vv in v.items() if kk != 'profile'
                }
            else:
                assert got[k] == v


def test_lidar_config_round_trip_and_overrides(tmp_path):
    config = parse_experiment(tiny_lidar(), base_dir=tmp_path)
    assert config.problem == 'density' and config.graph.type == 'disk'
    again = parse_experiment(yaml.safe_load(config.dump()), base_dir=tmp_path)
    assert again == config
    shorter = config.with_rounds(5)
    assert all(p.rounds == 5 for p in shorter.pairs.values()) and config.pair('dinno').rounds == 24


def _mutated(base: dict, path: str, value) -> dict:
    data = copy.deepcopy(base)
    keys = path.split('.')
    holder = data
    for k in keys[:-1]:
        holder = holder[k]
    if value is KeyError:
        del holder[keys[-1]]
    else:
        holder[keys[-1]] = value
    return data


@pytest.mark.parametrize(
    'path, value, expected',
    [
        ('experiment.colour', 'red', ['experiment.colour', 'unknown']),
        ('experiment.data_split_type', 'iid', ['experiment.data_split_type', 'hetero, random']),
        ('experiment.device', 'tpu', ['experiment.device', 'cpu, cuda, auto']),
        ('experiment.graph.type', 'star', ['experiment.graph.type', 'wheel']),
        ('experiment.graph.num_nodes', KeyError, ['experiment.graph.num_nodes']),
        ('experiment.model.num_filters', 'three', ['experiment.model.num_filters']),
        (
            'problem_configs.problem1.optimizer_config.rho_init',
            -1.0,
            ['problem_configs.problem1.optimizer_config.rho_init'],
        ),
        (
            'problem_configs.problem1.optimizer_config.rho_initt',
            0.5,
            ['problem_configs.problem1.optimizer_config.rho_initt'],
        ),
        (
            'problem_configs.problem1.optimizer_config.alg_name',
            'adam',
            ['problem_configs.problem1.optimizer_config.alg_name', 'dinno, dsgd, dsgt'],
        ),
        (
            'problem_configs.problem1.optimizer_config.primal_optimizer',
            'lbfgs',
            ['problem_configs.problem1.optimizer_config.primal_optimizer', 'adam'],
        ),
        (
            'problem_configs.problem2.batch_size',
            64,
            ['problem_configs.problem2.batch_size', 'unknown'],
        ),
        (
            'problem_configs.problem2.train_batch_size',
            0,
            ['problem_configs.problem2.train_batch_size'],
        ),
        (
            'problem_configs.problem2.metrics',
            ['top5'],
            ['problem_configs.problem2.metrics[0]', 'top1_accuracy'],
        ),
        (
            'problem_configs.problem2.metrics',
            ['mesh_grid_density'],
            ['problem_configs.problem2.metrics[0]', 'mnist'],
        ),
        (
            'problem_configs.problem3.problem_name',
            'dinno',
            ['problem_configs.problem3.problem_name', 'collide'],
        ),
        (
            'problem_configs.problem3.optimizer_config.outer_iterations',
            KeyError,
            ['problem_configs.problem3.optimizer_config.outer_iterations'],
        ),
    ],
)
def test_bad_seed_configs_name_the_key(path, value, expected):
    with pytest.raises(ValueError) as info:
        parse_experiment(_mutated(SEED_YAML, path, value))
    for text in expected:
        assert text in str(info.value)


@pytest.mark.parametrize(
    'path, value, expected',
    [
        ('experiment.lidar.num_beams', 0, ['experiment.lidar.num_beams']),
        ('experiment.lidar.beams', 20, ['experiment.lidar.beams', 'unknown']),
        (
            'experiment.routes.overlap',
            'lots',
            ['experiment.routes.overlap', 'tight, some, minimal'],
        ),
        ('experiment.map', {'resolution': 0.05}, ['experiment.map.path']),
        (
            'experiment.map',
            {'path': 'no_such_map.yaml'},
            ['experiment.map.path', 'does not exist'],
        ),
        ('experiment.model.shape', [3, 8, 1], ['experiment.model.shape']),
        ('experiment.loss', 'NLL', ['experiment.loss', 'BCE']),
        (
            'experiment.data_split_type',
            'hetero',
            [],
        ),  # the seed key is accepted (no meaning for lidar)
        ('experiment.graph.comm_radius', KeyError, ['comm_radius']),
        (
            'problem_configs.dinno.metrics',
            ['top1_accuracy'],
            ['problem_configs.dinno.metrics[0]', 'density'],
        ),
    ],
)
def test_bad_lidar_configs_name_the_key(path, value, expected):
    data = _mutated(tiny_lidar(), path, value)
    if not expected:
        parse_experiment(data)
        return
    with pytest.raises(ValueError) as info:
        parse_experiment(data)
    for text in expected:
        assert text in str(info.value)


def test_bad_config_fails_in_cli_before_running(tmp_path, capsys):
    bad = write_yaml(
        tmp_path / 'bad.yaml',
        _mutated(tiny_lidar(), 'problem_configs.dinno.optimizer_config.rho_init', 'x'),
    )
    assert experiment_main([str(bad), '--out', str(tmp_path / 'out')]) == 2
    assert 'problem_configs.dinno.optimizer_config.rho_init' in capsys.readouterr().err
    assert not (tmp_path / 'out').exists()


def test_tiny_lidar_experiment_end_to_end(tmp_path):
    src = write_yaml(tmp_path / 'tiny.yaml', tiny_lidar(out=str(tmp_path / 'runs')))
    config = load_experiment(src)
    result = run_experiment(config, progress=False)
    out = result.output_dir
    assert out.parent == tmp_path / 'runs' and out.name.endswith('_tiny_lidar')
    assert (out / 'tiny.yaml').read_text() == src.read_text()
    for name in ('dinno', 'dsgd', 'dsgt'):
        metrics = torch.load(out / f'{name}_results.pt', weights_only=True)
        assert metrics['evaluation_rounds'] == [0, 8, 16, 24]  # the initial models too
        assert metrics['consensus_error'][-1].shape == (3, 3)
        assert metrics['validation_loss'][-1].shape == (3,)
        assert len(metrics['mesh_grid_density']) == 1  # mesh_only_at_end
        assert metrics['mesh_grid_density'][0].shape == (3, *metrics['true_mesh'].shape)
        assert metrics['current_position'][-1].shape == (3, 3)
        assert metrics['round_train_loss'].shape == (24, 3)
    for png in ('validation_loss_consensus.png', 'learned_map.png'):
        assert (out / png).stat().st_size > 1000
    # validation loss falls from the base weights'
    problem = build_problem(config, 'dinno')
    base_val = problem.evaluate(problem.base_model())['validation_loss']
    final = result.results['dinno']['validation_loss'][-1]
    assert float(final.max()) < 0.8 * base_val
    assert float(result.results['dsgt']['validation_loss'][-1].mean()) < base_val


def test_writeout_false_writes_nothing(tmp_path):
    config = parse_experiment(tiny_lidar(rounds=2, writeout=False, out=str(tmp_path / 'runs')))
    result = run_experiment(config, progress=False)
    assert result.output_dir is None and not (tmp_path / 'runs').exists()
    assert set(result.results) == {'dinno', 'dsgd', 'dsgt'}


def _run(config, key: str, rounds: int):
    problem = build_problem(config, key)
    agents = build_agents(config, key, problem)
    evaluator = Evaluator(problem, config.pair(key), rounds)
    graph = RoundGraph.from_config(config.graph, config.num_nodes, config.seed)
    records = run_rounds(OfflineSwarm(agents, graph), rounds, evaluator=evaluator)
    return agents, records, evaluator


def test_offline_loop_is_deterministic_for_a_seed():
    config = parse_experiment(tiny_lidar(rounds=6))
    runs = []
    for _ in range(2):
        runs.append(_run(config, 'dinno', 6))
    (a1, r1, e1), (a2, r2, e2) = runs
    for x, y in zip(a1, a2):
        assert torch.equal(x.params(), y.params())
    assert [r['train_loss'] for r in r1] == [r['train_loss'] for r in r2]
    assert e1.summary == e2.summary
    other = parse_experiment(
        {**tiny_lidar(rounds=6), 'experiment': {**tiny_lidar()['experiment'], 'seed': 2}}
    )
    a3, _, _ = _run(other, 'dinno', 6)
    assert not torch.equal(a1[0].params(), a3[0].params())


@pytest.mark.parametrize('key', ['dinno', 'dsgt'])
def test_agent_built_alone_equals_agent_of_the_swarm(key):
    config = parse_experiment(tiny_lidar())
    alone = build_agent(config, key, build_problem(config, key), robot_id=2)
    swarm = build_agents(config, key, build_problem(config, key))
    twin = swarm[2]
    assert torch.equal(alone.params(), twin.params())
    assert all(torch.equal(alone.outgoing()[k], twin.outgoing()[k]) for k in twin.outgoing())
    assert (alone.position == twin.position).all()
    obs_a, obs_b = alone.begin_round(0), twin.begin_round(0)
    assert (obs_a.samples == obs_b.samples).all() and (obs_a.labels == obs_b.labels).all()
    for _ in range(3):  # the same first minibatches
        xa, ya = alone.problem.next_batch()
        xb, yb = twin.problem.next_batch()
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    # the other robots start from the same base weights but drive elsewhere
    assert torch.equal(swarm[0].params(), twin.params())
    assert not (swarm[0].position == twin.position).all()


def test_cli_runs_a_yaml_with_overrides(tmp_path, capsys):
    src = write_yaml(tmp_path / 'tiny.yaml', tiny_lidar(out=str(tmp_path / 'ignored')))
    assert (
        experiment_main(
            [
                str(src),
                '--rounds',
                '2',
                '--device',
                'cpu',
                '--out',
                str(tmp_path / 'runs'),
                '--no-progress',
                '-q',
            ]
        )
        == 0
    )
    (out,) = (tmp_path / 'runs').iterdir()
    resolved = load_experiment(out / 'experiment_resolved.yaml')
    assert all(p.rounds == 2 for p in resolved.pairs.values())
    assert 'results:' in capsys.readouterr().out


def test_plots_take_a_robot_lost_mid_run(tmp_path):
    three, two = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 3.0])
    metrics = {'validation_loss': [three, two], 'evaluation_rounds': [5, 10]}
    metrics['consensus_error'] = [torch.zeros(3, 3), torch.zeros(2, 2)]
    rounds, mean, low, high = plots.metric_band(metrics, 'validation_loss')
    assert list(rounds) == [5, 10] and list(mean) == [2.0, 2.0] and list(low) == [1.0, 1.0]
    assert plots.plot_curves({'dinno': metrics}, tmp_path / 'v.png', 'validation_loss').is_file()


def test_the_research_codes_template_runs_unchanged(tmp_path, monkeypatch, shared_data):
    """Its README's YAML, byte for byte, next to a ``data`` folder as its ``../data/`` says."""
    template = REPO / 'config' / 'experiments' / 'dist_mnist_template.yaml'
    (tmp_path / 'experiments').mkdir()
    (tmp_path / 'data').symlink_to(shared_data / 'mnist')
    yaml_path = tmp_path / 'experiments' / template.name
    yaml_path.write_bytes(template.read_bytes())
    monkeypatch.chdir(tmp_path / 'experiments')  # output_metadir ./outputs/, as the seed ran
    assert experiment_main([str(yaml_path), '--device', 'cpu', '--no-progress', '-q']) == 0
    (out,) = (tmp_path / 'experiments' / 'outputs').iterdir()
    assert out.name.endswith('_dist_cnn_cadmm_scaled_v_const')
    assert (out / template.name).read_bytes() == template.read_bytes()
    results = torch.load(out / 'vanilla_cadmm_results.pt', weights_only=True)
    assert results['alg_name'] == 'cadmm' and results['evaluation_rounds'] == [0, 20, 30]
    assert float(results['top1_accuracy'][-1].mean()) > 0.3  # 5 robots, hetero, 30 rounds


@pytest.mark.parametrize(
    'key, value, message',
    [
        ('dynamic_graph', True, r'problem_configs\.problem1\.dynamic_graph: a per-pair graph'),
        ('comm_radius', 600, r'problem_configs\.problem1\.comm_radius: a per-pair graph'),
        ('kernal_width', 5, r'problem_configs\.problem1\.kernal_width: unknown key'),
    ],
)
def test_research_keys_that_would_change_the_run_are_errors(tmp_path, key, value, message):
    data = copy.deepcopy(SEED_YAML)
    data['problem_configs']['problem1'][key] = value
    with pytest.raises(ValueError, match=message):
        load_experiment(write_yaml(tmp_path / 'seed.yaml', data))


def test_cadmm_is_dinno_and_ignored_keys_say_why(tmp_path, caplog):
    data = copy.deepcopy(SEED_YAML)
    data['problem_configs']['problem1']['optimizer_config']['alg_name'] = 'cadmm'
    log = logging.getLogger('dinno_ros.core.learning.schema')
    log.addHandler(caplog.handler)  # in a full session our loggers may not propagate to root
    try:
        with caplog.at_level('INFO', logger=log.name):
            config = load_experiment(write_yaml(tmp_path / 'seed.yaml', data))
    finally:
        log.removeHandler(caplog.handler)
    cls, _ = registry.parse_optimizer_config(config.pair('problem1').optimizer_config)
    assert cls.name == 'dinno' and config.pair('problem1').alg_name == 'cadmm'
    assert 'optimizer_config.profile: ignored (the research code' in caplog.text
    allowed = 'allowed: cadmm, choco, dinno, dsgd, dsgt, next, prox_pda'
    with pytest.raises(ValueError, match=allowed):
        registry.parse_optimizer_config({'alg_name': 'admm'})
