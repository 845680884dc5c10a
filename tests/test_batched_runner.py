"""
The batched offline runner (issue 9): the per-robot runner's rounds, all robots in one model.

Both runners run the same robots (same base weights, same minibatch generators, same graph) and
must give the same round records, metrics and final parameters within float tolerance: on the
real MNIST digits in ../shared/data/mnist as the experiment runner runs them (skipped when
absent), and always on synthetic data (the hand-written MNIST network and a generic ``vmap``
model). Also: when the per-robot runner is used instead, and the runner choice's errors.
"""

from __future__ import annotations

import copy
import logging

from conftest import SHARED_DATA
from dinno_ros.core.learning import registry
from dinno_ros.core.learning.agent import RobotAgent
from dinno_ros.core.learning.batched import BatchedSwarm, make_swarm
from dinno_ros.core.learning.experiment import run_pair
from dinno_ros.core.learning.experiment_config import parse_experiment
from dinno_ros.core.learning.optimizers import DivergedError
from dinno_ros.core.learning.problems.base import TensorLocalProblem
from dinno_ros.core.learning.problems.mnist import MNISTConvNet, nll_loss
from dinno_ros.core.learning.round import RoundGraph
from dinno_ros.core.learning.simulation import OfflineSwarm, run_rounds
from dinno_ros.core.wire import WireError
import networkx as nx
import pytest
import torch
from torch import nn
import torch.nn.functional as F

MNIST = SHARED_DATA / 'mnist'
needs_mnist = pytest.mark.skipif(
    not (MNIST / 't10k-images-idx3-ubyte.gz').is_file(), reason=f'no MNIST digits under {MNIST}'
)
TOL = {'rtol': 1e-4, 'atol': 1e-5}  # float32 sums in another order, a few rounds on


def assert_params_close(a: torch.Tensor, b: torch.Tensor) -> None:
    """
    Check parameters agree within TOL but for a few entries, and those within one Adam step.

    A fresh Adam's first step moves every entry by about +-lr whatever its gradient's size, so an
    entry whose gradient is float32 noise around 0 can take the other sign in either runner.
    """
    close = torch.isclose(a, b, **TOL)
    assert float(close.float().mean()) > 0.999, f'{int((~close).sum())} of {a.numel()} differ'
    assert float((a - b).abs().max()) < 1e-3


DINNO = {'alg_name': 'dinno', 'rho_init': 0.5, 'primal_iterations': 2, 'primal_lr': 0.005}
OPTIMIZERS = {
    'dinno': DINNO,
    'dinno_preconditioned': {
        **DINNO,
        'rho_init': 0.05,
        'primal_step': 'preconditioned',
        'persistant_primal_opt': True,
    },
    'dsgd': {'alg_name': 'dsgd', 'alpha0': 0.05},
    'dsgt': {'alg_name': 'dsgt', 'alpha': 0.05},
}


@pytest.fixture(autouse=True)
def one_thread():
    """Run on one torch thread (as the benches), restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def runner_log(caplog):
    """Return caplog holding the runner choice's log lines (our loggers may not propagate)."""
    log = logging.getLogger('dinno_ros.core.learning.batched.swarm')
    log.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO, logger=log.name):
            yield caplog
    finally:
        log.removeHandler(caplog.handler)


def mnist_experiment(optimizer: dict, rounds: int = 4) -> dict:
    metrics = ['forward_pass_count', 'validation_loss', 'consensus_error', 'top1_accuracy']
    return {
        'experiment': {
            'name': 'batched',
            'data_dir': str(MNIST),
            'writeout': False,
            'device': 'cpu',
            'graph': {'num_nodes': 5, 'type': 'wheel'},
        },
        'problem_configs': {
            'pair': {
                'problem_name': 'pair',
                'train_batch_size': 32,
                'val_batch_size': 1000,
                'evaluate_frequency': 2,
                'verbose_evals': False,
                'metrics': [*metrics, 'current_epoch', 'wire_bytes'],
                'optimizer_config': {**optimizer, 'outer_iterations': rounds},
            }
        },
    }


def assert_metrics_match(a: dict, b: dict) -> None:
    assert a['evaluation_rounds'] == b['evaluation_rounds']
    assert a['forward_pass_count'] == b['forward_pass_count']
    for x, y in zip(a['wire_bytes'], b['wire_bytes']):
        assert torch.equal(x, y)
    for name in ('validation_loss', 'consensus_error', 'top1_accuracy', 'current_epoch'):
        for x, y in zip(a[name], b[name]):
            torch.testing.assert_close(x, y, **TOL, msg=name)
    torch.testing.assert_close(a['round_train_loss'], b['round_train_loss'], **TOL)


@needs_mnist
@pytest.mark.parametrize('alg', OPTIMIZERS)
def test_mnist_pair_matches_the_per_robot_runner(alg, tmp_path, runner_log):
    config = parse_experiment(mnist_experiment(OPTIMIZERS[alg]))
    results = {}
    for runner in ('per_robot', 'batched'):
        models = tmp_path / f'{runner}.pt'
        metrics, _ = run_pair(config, 'pair', 'cpu', False, models=models, runner=runner)
        results[runner] = (metrics, torch.load(models, weights_only=True))
    assert 'offline runner: per-robot (asked for)' in runner_log.text
    assert 'offline runner: batched (5 robots' in runner_log.text
    (a, models_a), (b, models_b) = results['per_robot'], results['batched']
    assert_metrics_match(a, b)
    assert a['evaluation_rounds'] == [0, 2, 4]
    for robot in models_a:
        for name, value in models_a[robot].items():
            assert_params_close(value, models_b[robot][name])


class TinyMLP(nn.Module):
    """A model the batched runner has no hand-written form of (it goes through vmap)."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(6, 16)
        self.out = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.hidden(x)))


def cross_entropy(model, batch) -> torch.Tensor:
    x, y = batch
    return F.cross_entropy(model(x), y)


def synthetic_agents(kind: str, optimizer: dict, robots: int = 5) -> list[RobotAgent]:
    """Robots with random data of their own and one base model; hand-written or vmap form."""
    torch.manual_seed(0)
    base = MNISTConvNet(2, 5, 16) if kind == 'mnist' else TinyMLP()
    shape = (1, 28, 28) if kind == 'mnist' else (6,)
    agents = []
    for i in range(robots):
        gen = torch.Generator().manual_seed(100 + i)
        data = (torch.randn(40 + 8 * i, *shape, generator=gen), torch.randint(0, 3, (40 + 8 * i,)))
        local = TensorLocalProblem(
            copy.deepcopy(base),
            data,
            16,
            torch.Generator().manual_seed(i),
            nll_loss if kind == 'mnist' else cross_entropy,
        )
        config = {**optimizer, 'outer_iterations': 5}
        agents.append(RobotAgent(i, local, registry.build_optimizer(config, local)))
    return agents


def uneven_graph() -> RoundGraph:
    """Degrees 3, 2, 2, 1 and an isolated robot 4 (its rounds are local steps)."""
    graph = nx.empty_graph(5)
    graph.add_edges_from([(0, 1), (0, 2), (0, 3), (1, 2)])
    return RoundGraph(5, fixed=graph)


@pytest.mark.parametrize('kind', ['mnist', 'vmap'])
@pytest.mark.parametrize('alg', OPTIMIZERS)
def test_synthetic_rounds_match_the_per_robot_runner(kind, alg):
    per_robot = synthetic_agents(kind, OPTIMIZERS[alg])
    batched = synthetic_agents(kind, OPTIMIZERS[alg])
    swarm = make_swarm(batched, uneven_graph())
    assert isinstance(swarm, BatchedSwarm)
    a = run_rounds(OfflineSwarm(per_robot, uneven_graph()), 5)
    b = run_rounds(swarm, 5)
    for ra, rb in zip(a, b):
        assert (ra['forward_passes'], ra['num_edges']) == (rb['forward_passes'], rb['num_edges'])
        torch.testing.assert_close(ra['train_loss'], rb['train_loss'], **TOL)
    for x, y in zip(per_robot, batched):
        assert_params_close(x.params(), y.params())
        assert (x.bytes_sent, x.bytes_received) == (y.bytes_sent, y.bytes_received)
        assert x.last_info.keys() == y.last_info.keys()
        assert x.problem.current_epoch == y.problem.current_epoch
    if alg == 'dsgt':  # the state is written back into the robots' optimizers
        for x, y in zip(per_robot, batched):
            torch.testing.assert_close(x.optimizer.tracker, y.optimizer.tracker, **TOL)


def test_the_per_robot_runner_runs_what_the_batched_one_cannot(runner_log):
    late = make_swarm(synthetic_agents('mnist', OPTIMIZERS['dsgd']), uneven_graph(), [[1, 0, 2]])
    assert isinstance(late, OfflineSwarm)
    choco = {'alg_name': 'choco', 'gamma': 0.5}
    swarm = make_swarm(synthetic_agents('mnist', choco), uneven_graph())
    assert isinstance(swarm, OfflineSwarm)
    assert 'offline runner: per-robot (no batched choco' in runner_log.text
    tracked = {**OPTIMIZERS['dinno_preconditioned'], 'primal_step': 'tracked'}
    assert isinstance(make_swarm(synthetic_agents('mnist', tracked), uneven_graph()), OfflineSwarm)
    assert "offline runner: per-robot (primal_step 'tracked'" in runner_log.text
    forced = make_swarm(
        synthetic_agents('mnist', OPTIMIZERS['dsgd']), uneven_graph(), runner='per_robot'
    )
    assert isinstance(forced, OfflineSwarm)


def test_runner_choice_errors_name_the_key_and_allowed_values():
    agents = synthetic_agents('mnist', OPTIMIZERS['dsgd'])
    with pytest.raises(
        ValueError, match="runner: 'fast' not allowed; allowed: auto, batched, per_robot"
    ):
        make_swarm(agents, uneven_graph(), runner='fast')
    with pytest.raises(ValueError, match='runner: batched not possible here: late messages'):
        make_swarm(agents, uneven_graph(), [[1, 0, 2]], runner='batched')


def test_divergence_names_the_robot():
    """The batched runner says which robot diverged (the per-robot one fails on the wire)."""
    for cls, error in ((OfflineSwarm, WireError), (BatchedSwarm, DivergedError)):
        agents = synthetic_agents('mnist', OPTIMIZERS['dsgd'])
        with torch.no_grad():
            agents[4].optimizer.params[3] = float('nan')
        with pytest.raises(error) as info:
            cls(agents, uneven_graph()).run_round(0)
    assert str(info.value).startswith('robot 4, round 0: dsgd diverged: 1 of ')
