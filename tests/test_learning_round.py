"""
The round's rules in one process: neighbours from positions, the degree, late messages.

The same ``RobotRound`` runs offline (``OfflineSwarm``) and in the ROS robot node.
"""

from __future__ import annotations

from dinno_ros.core.learning import registry
from dinno_ros.core.learning.agent import RobotAgent
from dinno_ros.core.learning.problems.base import robot_generator, TensorLocalProblem
from dinno_ros.core.learning.round import RobotRound, RoundGraph
from dinno_ros.core.learning.simulation import OfflineSwarm
import networkx as nx
import pytest
import torch


def agent(robot_id: int, alg: str = 'dsgd') -> RobotAgent:
    """Build a robot fitting y = 0 with a 2-weight linear model that starts at its id squared."""
    model = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(float(robot_id**2))
    data = (torch.eye(2), torch.zeros(2))
    local = TensorLocalProblem(
        model,
        data,
        2,
        robot_generator(0, robot_id),
        lambda m, b: ((m(b[0]).squeeze(1) - b[1]) ** 2).mean(),
    )
    config = {'alg_name': 'dsgd', 'alpha0': 1e-9, 'mu': 0.0}
    return RobotAgent(robot_id, local, registry.build_optimizer(config, local))


class Recorder:
    """A link that records what it sends."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, str, int]] = []

    def send_weights(self, round_k, vector, values, degree) -> None:
        self.sent.append((round_k, vector, degree))

    def send_params(self, round_k, packed) -> None:
        pass

    def send_state(self, state) -> None:
        pass

    def show_observation(self, observation) -> None:
        pass


def test_disk_neighbours_come_from_known_positions_only():
    graph = RoundGraph(4, comm_radius=2.0)
    positions = {0: (0.0, 0.0), 1: (1.5, 0.0), 2: (3.0, 0.0), 3: None}
    assert graph.neighbors(1, positions) == [0, 2]
    assert graph.neighbors(0, positions) == [1]
    assert graph.neighbors(3, positions) == []  # unknown position: no links
    assert graph.neighbors(2, {0: (0.0, 0.0), 2: (0.5, 0.5)}) == [0]  # 1 and 3 unknown
    fixed = RoundGraph(3, fixed=nx.path_graph(3))
    assert not fixed.dynamic and fixed.neighbors(1, {}) == [0, 2]
    with pytest.raises(ValueError, match='fixed or a disk graph'):
        RoundGraph(3)


def test_the_degree_sent_is_the_neighbours_waited_for():
    link = Recorder()
    robot = RobotRound(agent(0), RoundGraph(3, fixed=nx.complete_graph(3)), link, 2)
    robot.begin(0)
    assert robot.send(0, {}) == [1, 2] and link.sent == [(0, 'params', 2)]
    robot.misses.record(on_time=[1], late=[2])
    robot.misses.record(on_time=[1], late=[2])  # robot 2 is gone
    assert robot.send(1, {}) == [1] and link.sent[-1] == (1, 'params', 1)


def test_a_late_message_is_replaced_by_the_senders_previous_one():
    """Robot 0 mixes robot 1's round-1 weights in round 2: it got its round-2 ones too late."""
    path = RoundGraph(4, fixed=nx.path_graph(4))
    late = OfflineSwarm([agent(i) for i in range(4)], path, [[1, 0, 2]])
    on_time = OfflineSwarm([agent(i) for i in range(4)], path)
    for k in range(2):
        late.run_round(k), on_time.run_round(k)
    round_1 = late.robots[0].inbox.wait_round(1, [1], 0.0).messages[1].vectors['params']
    before = late.agents[0].params()
    late.run_round(2), on_time.run_round(2)
    # DSGD with a tiny step, Metropolis weights of degrees 1 and 2: 2/3 own, 1/3 robot 1's
    expected = 2 / 3 * before + 1 / 3 * round_1
    assert torch.allclose(late.agents[0].params(), expected, atol=1e-6)
    assert not torch.allclose(on_time.agents[0].params(), expected, atol=1e-3)
    assert late.robots[0].inbox.has_round(1, 2)  # it arrived after the round
    assert torch.equal(late.agents[1].params(), on_time.agents[1].params())
