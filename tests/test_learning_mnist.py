"""The MNIST problem on the real digits in ../shared/data/mnist (skipped when absent)."""

from __future__ import annotations

from pathlib import Path

from dinno_ros.core.learning import registry
from dinno_ros.core.learning.agent import RobotAgent
from dinno_ros.core.learning.metrics import consensus_error, parameters_loaded
from dinno_ros.core.learning.problems.mnist import (
    evaluate_classifier,
    MNISTConvNet,
    MNISTProblem,
    split_indices,
)
from dinno_ros.core.learning.round import RoundGraph
from dinno_ros.core.learning.simulation import OfflineSwarm
import networkx as nx
import pytest
import torch
import torch.nn.functional as F

DATA = Path(__file__).resolve().parents[1].parent / 'shared' / 'data' / 'mnist'
needs_data = pytest.mark.skipif(
    not (DATA / 't10k-images-idx3-ubyte.gz').is_file(), reason='no shared MNIST data'
)


def mnist_config(**overrides) -> dict:
    return {
        'problem_name': 'mnist',
        'data_dir': str(DATA),
        'data_split_type': 'hetero',
        'model': {'num_filters': 3, 'kernel_size': 5, 'linear_width': 64},
        'train_batch_size': 32,
        'val_batch_size': 1000,
        **overrides,
    }


def mnist_problem(num_nodes: int, seed: int = 0, **overrides) -> MNISTProblem:
    """Build the MNIST problem of ``mnist_config(**overrides)``, validated as the YAML's."""
    cls, typed = registry.parse_problem_config(mnist_config(**overrides))
    return cls(typed, num_nodes=num_nodes, seed=seed)


def test_seed_cnn_shapes() -> None:
    net = MNISTConvNet(3, 5, 64)
    assert net.fc1.in_features == 432 and net.fc2.out_features == 10
    out = net(torch.zeros(2, 1, 28, 28))
    assert out.shape == (2, 10) and torch.allclose(out.exp().sum(1), torch.ones(2))


def test_splits() -> None:
    labels = torch.arange(1000) % 10
    hetero = split_indices(labels, 10, 'hetero', 0)
    assert [set(labels[i].tolist()) for i in hetero] == [{c} for c in range(10)]
    three = split_indices(labels, 3, 'hetero', 0)
    assert [sorted(set(labels[i].tolist())) for i in three] == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    rand = split_indices(labels, 4, 'random', 5)
    assert sorted(torch.cat(rand).tolist()) == list(range(1000)) and {len(r) for r in rand} == {
        250
    }
    assert all(torch.equal(a, b) for a, b in zip(rand, split_indices(labels, 4, 'random', 5)))
    with pytest.raises(ValueError, match='graph.num_nodes: 11 .*hetero.*1..10'):
        split_indices(labels, 11, 'hetero', 0)


def test_problem_config_errors() -> None:
    with pytest.raises(
        ValueError, match="problem.problem_name: unknown 'cifar'; allowed: .*mnist"
    ):
        registry.parse_problem_config({'problem_name': 'cifar'})
    with pytest.raises(
        ValueError, match="problem.data_split_type: 'iid' not allowed; allowed: hetero, random"
    ):
        registry.parse_problem_config(mnist_config(data_split_type='iid'))
    with pytest.raises(ValueError, match='problem.model.num_filter: unknown key'):
        registry.parse_problem_config(mnist_config(model={'num_filter': 3}))
    with pytest.raises(FileNotFoundError, match='problem.data_dir'):
        mnist_problem(2, data_dir='/nonexistent', download=False)


def test_config_from_seed_sections() -> None:
    experiment = {
        'name': 'mnist_demo',
        'data_dir': str(DATA),
        'output_metadir': 'out',
        'writeout': False,
        'data_split_type': 'random',
        'loss': 'NLL',
        'graph': {'num_nodes': 10, 'type': 'wheel'},
        'model': {'num_filters': 3, 'kernel_size': 5, 'linear_width': 64},
    }
    pair = {
        'problem_name': 'mnist',
        'train_batch_size': 64,
        'val_batch_size': 128,
        'evaluate_frequency': 10,
        'metrics': ['top1_accuracy'],
        'optimizer_config': {'alg_name': 'dinno'},
    }
    cfg = MNISTProblem.config_from_sections(experiment, pair)
    assert (
        cfg.data_split_type == 'random'
        and cfg.train_batch_size == 64
        and cfg.model.linear_width == 64
    )


@needs_data
def test_real_digits_split_and_determinism() -> None:
    problem = mnist_problem(10, seed=3)
    assert len(problem.train_y) == 8000 and len(problem.validation_set[1]) == 2000
    assert problem.train_x.shape[1:] == (1, 28, 28)
    counts = [len(problem.local_problem(i)) for i in range(10)]
    assert sum(counts) == 8000 and min(counts) > 600
    a, b = (
        problem.local_problem(4),
        mnist_problem(10, seed=3).local_problem(4),
    )
    vec = torch.nn.utils.parameters_to_vector
    assert torch.equal(vec(a.model.parameters()), vec(b.model.parameters()))
    assert torch.equal(vec(a.model.parameters()), vec(problem.local_problem(0).model.parameters()))
    for _ in range(3):
        xa, ya = a.next_batch()
        xb, yb = b.next_batch()
        assert torch.equal(xa, xb) and torch.equal(ya, yb) and set(ya.tolist()) == {4}
    other = mnist_problem(10, seed=4).local_problem(4)
    assert not torch.equal(vec(a.model.parameters()), vec(other.model.parameters()))


@needs_data
def test_shared_data_is_reused_and_gives_identical_robots() -> None:
    routes = {'waypoints_per_robot': 2, 'robot_radius': 0.2}
    cfg = mnist_config(map={'generate': 'office', 'generate_seed': 1}, routes=routes)
    del cfg['problem_name']
    first = MNISTProblem(cfg, 4, seed=2)
    assert first.data.world is None  # no world until a motion is asked for
    second = MNISTProblem({**cfg, 'train_batch_size': 16}, 4, seed=2, data=first.data)
    alone = MNISTProblem({**cfg, 'train_batch_size': 16}, 4, seed=2)
    assert second.data is first.data and second.train_x is first.train_x
    motion = second.motion(3)
    assert first.world is second.world and second.world.planned_robots == (3,)
    assert not second.world.has_validation
    other = alone.motion(3)
    for k in (0, 4):
        assert (motion.pose(k) == other.pose(k)).all()
        assert (motion.observe(k).samples == other.observe(k).samples).all()
    a, b = second.local_problem(1), alone.local_problem(1)
    vec = torch.nn.utils.parameters_to_vector
    assert torch.equal(vec(a.model.parameters()), vec(b.model.parameters()))
    xa, ya = a.next_batch()
    xb, yb = b.next_batch()
    assert torch.equal(xa, xb) and torch.equal(ya, yb) and len(ya) == 16
    assert second.evaluate(a.model) == alone.evaluate(b.model)
    with pytest.raises(ValueError, match='problem data'):
        MNISTProblem({**cfg, 'data_split_type': 'random'}, 4, seed=2, data=first.data)
    assert mnist_problem(4, seed=2).motion(0) is None


@needs_data
def test_short_dinno_run_beats_chance() -> None:
    """
    5 robots, random split, cycle graph, 60 DiNNO rounds.

    Validation accuracy far above chance (0.1).
    """
    problem = mnist_problem(5, seed=0, data_split_type='random')
    config = {
        'alg_name': 'dinno',
        'rho_init': 0.5,
        'rho_scaling': 1.0003,
        'outer_iterations': 60,
        'primal_iterations': 2,
        'primal_optimizer': 'adam',
        'primal_lr_start': 0.005,
        'primal_lr_finish': 0.0005,
        'lr_decay_type': 'log',
    }
    robots = [registry.build_optimizer(config, problem.local_problem(i)) for i in range(5)]
    graph = nx.cycle_graph(5)
    start = problem.evaluate(robots[0].problem.model)['top1_accuracy']
    agents = [RobotAgent(i, r.problem, r) for i, r in enumerate(robots)]
    swarm = OfflineSwarm(agents, RoundGraph(5, fixed=graph))
    for k in range(60):
        swarm.run_round(k)
    accs = [problem.evaluate(r.problem.model)['top1_accuracy'] for r in robots]
    assert start < 0.25 and min(accs) > 0.6, (start, accs)
    ce = consensus_error([r.params for r in robots])
    assert ce['pairwise'].shape == (5, 5) and 0 <= ce['min'] <= ce['max'] < 0.5
    template = problem.base_model()
    with parameters_loaded(
        template, robots[2].params
    ):  # what the ROS monitor does with received vectors
        assert problem.evaluate(template)['top1_accuracy'] == pytest.approx(accs[2])
    assert problem.evaluate(template)['top1_accuracy'] == pytest.approx(start)


def test_validation_loss_is_the_research_codes_and_nll_the_mean():
    """Sum of batch-mean NLLs over the digits (the research code), and the true mean beside it."""
    torch.manual_seed(0)
    model = MNISTConvNet()
    x, y = torch.randn(300, 1, 28, 28), torch.randint(0, 10, (300,))
    got = evaluate_classifier(model, x, y, batch_size=128)
    with torch.no_grad():
        out = model(x)
    batches = [(0, 128), (128, 256), (256, 300)]
    means = [float(F.nll_loss(out[a:b], y[a:b])) for a, b in batches]
    assert got['validation_loss'] == pytest.approx(sum(means) / 300, rel=1e-5)
    assert got['validation_nll'] == pytest.approx(float(F.nll_loss(out, y)), rel=1e-5)
    assert got['top1_accuracy'] == pytest.approx(float((out.argmax(1) == y).float().mean()))
