"""
Compression operators, their wire encodings, byte counts and Choco-SGD.

Choco-SGD on the 5-robot least-squares check of ``test_learning_optimizers``; the byte counts
against the CDR serialisation rclpy itself produces.
"""

from __future__ import annotations

import math

from dinno_ros.core.learning import registry, simulation
from dinno_ros.core.learning.agent import RobotAgent
from dinno_ros.core.learning.compression import CompressionConfig, Compressor
from dinno_ros.core.learning.problems.base import robot_generator, TensorLocalProblem
from dinno_ros.core.learning.round import RoundGraph
from dinno_ros.core.learning.simulation import OfflineSwarm
from dinno_ros.core.weights_cdr import weights_wire_bytes
from dinno_ros.core.wire import pack_tensors, pack_vector, TensorLayout
from dinno_ros.core.wire import WireError
import networkx as nx
import numpy as np
import pytest
import torch

DIM, SAMPLES, NODES = 3, 12, 5
N = 1000


def compressor(kind: str, **kw) -> Compressor:
    return Compressor(CompressionConfig(kind=kind, **kw), N, seed=4)


def test_top_k_keeps_the_largest_entries_exactly() -> None:
    x = torch.randn(N, generator=torch.Generator().manual_seed(0))
    c = compressor('top_k', fraction=0.01)
    arrays, dense = c.compress(x, sender=2, round_k=5)
    assert c.k == 10 and arrays['indices'].dtype == np.int32 and arrays['values'].size == 10
    keep = x.abs().topk(10).indices
    assert torch.equal(dense[keep], x[keep]) and int((dense != 0).sum()) == 10


def test_random_k_receiver_draws_the_senders_indices() -> None:
    x = torch.randn(N, generator=torch.Generator().manual_seed(1))
    sender = compressor('random_k', fraction=0.05)
    arrays, dense = sender.compress(x, sender=3, round_k=7)
    assert list(arrays) == ['values'] and arrays['values'].size == 50  # no indices travel
    receiver = compressor('random_k', fraction=0.05)
    assert torch.equal(receiver.decode(arrays, 3, 7), dense)
    kept = dense != 0
    assert torch.equal(dense[kept], x[kept]) and int(kept.sum()) == 50
    other_round = receiver.decode(arrays, 3, 8)
    assert not torch.equal(other_round != 0, kept)  # each (sender, round) draws its own


def test_qsgd_packs_4_bit_codes_and_is_unbiased_up_to_its_scale() -> None:
    x = torch.randn(N, generator=torch.Generator().manual_seed(2))
    c = compressor('qsgd', levels=7)
    arrays, _ = c.compress(x, sender=0, round_k=0)
    assert arrays['codes'].dtype == np.uint8 and arrays['codes'].size == N // 2  # 4 bits each
    mean = torch.stack([c.compress(x, 0, k)[1] for k in range(400)]).mean(0)
    scale = 1.0 / (1.0 + min(N / 49, math.sqrt(N) / 7))
    assert float((mean / scale - x).norm() / x.norm()) < 0.15
    assert c.compress(torch.zeros(N), 0, 0)[1].abs().sum() == 0


def test_identity_is_exact() -> None:
    x = torch.randn(N)
    assert torch.equal(compressor('identity').compress(x, 0, 0)[1], x)


I32, F32, U8 = np.int32, np.float32, np.uint8
HALF = N // 2  # 4-bit codes: two per byte


@pytest.mark.parametrize(
    'kind, arrays, error',
    [
        ('top_k', {'indices': np.arange(10, dtype=np.int64)}, 'holds'),
        ('top_k', {'indices': np.full(10, N, I32), 'values': np.ones(10, F32)}, 'outside'),
        ('top_k', {'indices': np.zeros(10, I32), 'values': np.ones(10, F32)}, 'repeat'),
        ('top_k', {'indices': np.arange(9, dtype=I32), 'values': np.ones(9, F32)}, 'expected'),
        ('random_k', {'values': np.full(10, np.nan, F32)}, 'NaN'),
        ('qsgd', {'norm': np.array([-1.0], F32), 'codes': np.zeros(HALF, U8)}, 'negative'),
        ('qsgd', {'norm': np.ones(1, F32), 'codes': np.full(HALF, 255, U8)}, 'above'),
    ],
)
def test_malformed_compressed_messages_are_wire_errors(
    kind: str, arrays: dict, error: str
) -> None:
    with pytest.raises(WireError, match=error):
        compressor(kind, fraction=0.01).decode(arrays, 0, 0)


def test_wire_bytes_are_what_rclpy_serialises() -> None:
    serialization = pytest.importorskip('rclpy.serialization', reason='needs rclpy (make setup)')
    codec = pytest.importorskip('dinno_ros.ros.codec', reason='needs dinno_msgs (make setup)')
    model = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Linear(5, 1))
    layout = TensorLayout.from_model(model)
    dense = pack_vector(torch.nn.utils.parameters_to_vector(model.parameters()), layout)
    x = torch.randn(layout.numel)
    small = Compressor(CompressionConfig(kind='qsgd', levels=7), layout.numel)
    for packed, vector in (
        (dense, 'params'),
        (pack_tensors(compressor('top_k', fraction=0.01).encode(torch.randn(N), 0, 0)), 'delta'),
        (pack_tensors(small.encode(x, 0, 0)), 'delta'),
    ):
        msg = codec.packed_weights_msg(packed, sender=1, round_k=2, degree=3, vector=vector)
        assert len(serialization.serialize_message(msg)) == weights_wire_bytes(packed, vector)


def squared_error(model: torch.nn.Module, batch) -> torch.Tensor:
    x, y = batch
    return ((model(x).squeeze(1) - y) ** 2).mean()


def lsq(config: dict, seed: int = 0, start: float = 0.0) -> tuple[list[RobotAgent], torch.Tensor]:
    """
    5 robots with disagreeing least-squares shares; returns them and the central optimum.

    Every robot's weights start at ``start`` (all robots equal).
    """
    gen = torch.Generator().manual_seed(seed)
    agents, rows = [], []
    for i in range(NODES):
        a = torch.randn(SAMPLES, DIM, generator=gen)
        b = a @ (2.0 * torch.randn(DIM, generator=gen)) + 0.1 * torch.randn(SAMPLES, generator=gen)
        rows.append((a, b))
        model = torch.nn.Linear(DIM, 1, bias=False)
        torch.nn.init.constant_(model.weight, start)
        local = TensorLocalProblem(model, (a, b), SAMPLES, robot_generator(0, i), squared_error)
        agents.append(RobotAgent(i, local, registry.build_optimizer(config, local)))
    a = torch.cat([r[0] for r in rows]).double()
    b = torch.cat([r[1] for r in rows]).double()
    return agents, torch.linalg.lstsq(a, b.unsqueeze(1)).solution.squeeze(1).float()


def run(agents: list[RobotAgent], rounds: int, graph: nx.Graph | None = None) -> OfflineSwarm:
    swarm = OfflineSwarm(agents, RoundGraph(len(agents), fixed=graph or nx.cycle_graph(NODES)))
    simulation.run_rounds(swarm, rounds)
    return swarm


def choco(kind: str = 'top_k', **kw) -> dict:
    return {'alg_name': 'choco', 'compression': {'kind': kind, 'fraction': 0.1}, **kw}


def test_choco_without_compression_is_dsgd() -> None:
    """Identity compression and gamma 1: the public copies are the parameters, DSGD's mix."""
    dsgd, _ = lsq({'alg_name': 'dsgd', 'alpha0': 0.2, 'mu': 1.0})
    same, _ = lsq(choco('identity', alpha0=0.2, mu=1.0, gamma=1.0))
    run(dsgd, 50)
    run(same, 50)
    for a, b in zip(dsgd, same):
        assert torch.allclose(a.params(), b.params(), atol=1e-6)


def test_choco_public_copies_can_start_at_the_shared_initial_model() -> None:
    """
    ``public_start: initial``: nothing of x_0 travels, and every copy of robot j is j's own.

    All robots start at the same nonzero weights; with identity compression and gamma 1 it is
    still DSGD exactly.
    """
    agents, _ = lsq(choco(alpha0=0.1, public_start='initial'), start=0.5)
    zeros, _ = lsq(choco(alpha0=0.1), start=0.5)
    assert torch.count_nonzero(agents[0].optimizer.outgoing()['delta']) == 0
    assert torch.count_nonzero(zeros[0].optimizer.outgoing()['delta']) > 0
    run(agents, 20)
    for a in agents:
        for j, copy in a.optimizer.copies.items():
            assert torch.equal(copy, agents[j].optimizer.public)

    dsgd, _ = lsq({'alg_name': 'dsgd', 'alpha0': 0.2, 'mu': 1.0}, start=0.5)
    same, _ = lsq(choco('identity', alpha0=0.2, mu=1.0, gamma=1.0, public_start='initial'), 0, 0.5)
    run(dsgd, 50)
    run(same, 50)
    for a, b in zip(dsgd, same):
        assert torch.allclose(a.params(), b.params(), atol=1e-6)


def test_choco_top_10_percent_reaches_the_central_optimum() -> None:
    """
    Top-10% (1 of 3 entries per message): within 1e-3 of the optimum.

    Its step size decays like DSGD's (alpha_k ~ 1 / (mu k)), and so does its distance to the
    optimum (measured: 5.1e-3 at 4,000 rounds, 1.08e-3 at 20,000): about 25 s here.
    """
    agents, x_star = lsq(choco(alpha0=0.2, mu=1.0, gamma=0.8))
    run(agents, 24000)
    assert max(float((a.params() - x_star).norm()) for a in agents) < 1e-3


def test_choco_gossip_steps_agree_more_per_gradient_step() -> None:
    """``gossip_steps: 4``: a gradient step every 4th round, the rounds between only gossip."""

    def spread(agents: list[RobotAgent]) -> float:
        mean = torch.stack([a.params() for a in agents]).mean(0)
        return max(float((a.params() - mean).norm()) for a in agents)

    one, _ = lsq(choco(alpha0=0.1, gamma=0.3))
    four, _ = lsq(choco(alpha0=0.1, gamma=0.3, gossip_steps=4))
    run(one, 50)
    run(four, 200)
    assert one[0].optimizer.forward_passes == four[0].optimizer.forward_passes == 50
    assert four[0].bytes_sent > 3 * one[0].bytes_sent  # four messages per gradient step
    assert spread(four) < 0.75 * spread(one), (spread(four), spread(one))  # measured 0.67


def test_choco_counts_compressed_bytes() -> None:
    agents, _ = lsq(choco(alpha0=0.2, mu=1.0, gamma=0.8))
    run(agents, 10)
    compressed = agents[0].optimizer.wire_arrays('delta')
    per_message = weights_wire_bytes(pack_tensors(compressed), 'delta')
    assert agents[0].bytes_sent == 10 * per_message
    assert agents[0].bytes_received == 10 * 2 * per_message  # two neighbours on the cycle


def test_choco_needs_a_fixed_graph() -> None:
    agents, _ = lsq(choco(alpha0=0.1))
    swarm = run(agents, 3, nx.path_graph(NODES))
    swarm.graph = RoundGraph(NODES, fixed=nx.cycle_graph(NODES))  # robot 0 meets robot 4
    for robot in swarm.robots:
        robot.graph = swarm.graph
    with pytest.raises(ValueError, match='robot 4 became a neighbour at round 3'):
        simulation.run_rounds(swarm, 1, start=3)


@pytest.mark.parametrize(
    'override, key',
    [
        ({'mu': 10.0, 'alpha0': 0.2}, 'optimizer_config.mu: mu \\* alpha0 = 2'),
        ({'gamma': 1.5}, 'optimizer_config.gamma: 1.5 out of range'),
        (
            {'compression': {'kind': 'top5'}},
            "optimizer_config.compression.kind: 'top5' not allowed",
        ),
        ({'compression': {'fraction': 0.0}}, 'optimizer_config.compression.fraction: 0.0 out of'),
        (
            {'public_start': 'random'},
            "optimizer_config.public_start: 'random' not allowed; allowed: zeros, initial",
        ),
    ],
)
def test_choco_config_errors_name_the_key(override: dict, key: str) -> None:
    with pytest.raises(ValueError, match=key):
        registry.parse_optimizer_config({**choco(), **override})


def test_quality_per_megabyte_is_plotted_from_wire_bytes(tmp_path) -> None:
    from dinno_ros.core.learning.plots import plot_against_megabytes

    counts = [torch.tensor([[0, 0], [0, 0]]), torch.tensor([[1000, 2000], [3000, 2000]])]
    accuracy = [torch.zeros(2), torch.ones(2)]
    with_bytes = {'choco': {'top1_accuracy': accuracy, 'wire_bytes': counts}}
    out = plot_against_megabytes(with_bytes, tmp_path / 'mb.png', 'top1_accuracy')
    assert out is not None and out.stat().st_size > 0
    without = {'dsgd': {'top1_accuracy': [torch.zeros(2), torch.ones(2)]}}
    assert plot_against_megabytes(without, tmp_path / 'none.png', 'top1_accuracy') is None


def test_choco_on_the_disk_graph_is_refused_before_anything_runs(tmp_path) -> None:
    from dinno_ros.core.learning.experiment_config import parse_experiment

    raw = {
        'experiment': {
            'name': 'x',
            'map': {'generate': 'apartment', 'generate_seed': 0},
            'graph': {'num_nodes': 3, 'type': 'disk', 'comm_radius': 3.0},
        },
        'problem_configs': {'p': {'problem_name': 'p', 'optimizer_config': {**choco()}}},
    }
    raw['problem_configs']['p']['optimizer_config']['outer_iterations'] = 5
    with pytest.raises(ValueError, match='p.optimizer_config.alg_name: choco needs a fixed graph'):
        parse_experiment(raw, tmp_path)
    raw['experiment']['graph'] = {'num_nodes': 3, 'type': 'cycle'}
    assert parse_experiment(raw, tmp_path).pair('p').alg_name == 'choco'
