"""
Robots' rounds in one process: each robot's ``RobotLink`` puts straight into the others' inboxes.

The same per-robot rounds that run in the ROS node, without DDS: with every message on time they
reach exactly the offline runner's weights; a robot that stops sending does not stall the others.
"""

from __future__ import annotations

from pathlib import Path
import threading

from conftest import CONFIGS
from dinno_ros.core.learning.build import build_agents, build_problem
from dinno_ros.core.learning.round import RoundGraph, StateReport
from dinno_ros.core.learning.simulation import OfflineSwarm, run_rounds
from dinno_ros.core.swarm.rounds import RobotRounds
from dinno_ros.core.swarm.spec import load_swarm
from dinno_ros.core.wire import PackedTensors
import pytest
import torch
import yaml

ROUNDS = 4


class LocalLink:
    """One robot's link: what it sends lands in every other robot's inbox and position board."""

    def __init__(
        self, robot_id: int, swarm: dict[int, RobotRounds], mute_after: int | None = None
    ):
        self.robot_id, self.swarm, self.mute_after = robot_id, swarm, mute_after

    def _others(self, round_k: int) -> list[RobotRounds]:
        if self.mute_after is not None and round_k > self.mute_after:
            return []  # this robot's radio died
        return [r for j, r in self.swarm.items() if j != self.robot_id]

    def send_weights(self, round_k: int, vector: str, packed: PackedTensors, degree: int) -> None:
        for other in self._others(round_k):
            other.round.receive(self.robot_id, round_k, vector, packed, degree)

    def send_params(self, round_k: int, packed: PackedTensors) -> None:
        pass

    def send_state(self, state: StateReport) -> None:
        for other in self._others(state.round_k):
            xy = (float(state.pose[0]), float(state.pose[1]))
            other.positions.put(self.robot_id, state.round_k, xy, state.finished)

    def show_observation(self, observation) -> None:
        pass


def dinno_config(tmp_path: Path, **swarm) -> Path:
    data = yaml.safe_load((CONFIGS / 'tiny_swarm.yaml').read_text())
    data['swarm'].update(pair='dinno', **swarm)
    data['problem_configs'] = {
        'dinno': {
            'problem_name': 'dinno',
            'train_batch_size': 64,
            'val_batch_size': 512,
            'metrics': ['validation_loss'],
            'optimizer_config': {
                'alg_name': 'dinno',
                'outer_iterations': ROUNDS,
                'rho_init': 0.3,
                'rho_scaling': 1.0,
                'primal_iterations': 2,
                'primal_optimizer': 'adam',
                'primal_lr': 0.01,
            },
        }
    }
    path = tmp_path / 'local.yaml'
    path.write_text(yaml.safe_dump(data))
    return path


def run_local_swarm(config: Path, mute: dict[int, int] | None = None) -> dict[int, RobotRounds]:
    """Every robot's rounds in a thread of its own, as the nodes run them; returns the robots."""
    torch.set_num_threads(1)
    spec = load_swarm(config)
    swarm: dict[int, RobotRounds] = {}
    for i in range(spec.num_robots):
        link = LocalLink(i, swarm, (mute or {}).get(i))
        swarm[i] = RobotRounds(spec, i, link)
    errors: list[BaseException] = []

    def run(robot: RobotRounds) -> None:
        try:
            robot.run()
        except BaseException as exc:  # noqa: B902 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(r,)) for r in swarm.values()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), 'a robot never finished'
    assert not errors, errors
    return swarm


def offline_params(config: Path) -> dict[int, torch.Tensor]:
    """Return the offline runner's final parameters, with the swarm section's injected lateness."""
    spec = load_swarm(config)
    exp = spec.experiment
    agents = build_agents(exp, spec.pair_key, build_problem(exp, spec.pair_key, 'cpu'))
    graph = RoundGraph.from_config(exp.graph, exp.num_nodes, exp.seed)
    late, lost = spec.section.late_messages, spec.section.lost_after_rounds
    run_rounds(OfflineSwarm(agents, graph, late, lost), ROUNDS)
    return {a.robot_id: a.params() for a in agents}


@pytest.mark.parametrize(
    'late', [[], [[1, 0, 2]], [[1, 0, 1], [1, 0, 2], [2, 1, 3]]], ids=['on-time', 'one', 'three']
)
def test_local_swarm_matches_the_offline_runner(tmp_path, late):
    """Threads, timeouts and real waiting against the offline loop: equal, late messages too."""
    config = dinno_config(tmp_path, late_messages=late, round_timeout=0.3)
    swarm = run_local_swarm(config)
    offline = offline_params(config)
    for i, params in offline.items():
        assert torch.allclose(swarm[i].agent.params(), params, rtol=1e-5, atol=1e-6), i
    if late:
        on_time = offline_params(dinno_config(tmp_path, late_messages=[]))
        assert not torch.allclose(on_time[0], offline[0]), 'the late message changed nothing'


def test_a_robot_whose_radio_dies_does_not_stall_the_others(tmp_path):
    config = dinno_config(tmp_path, round_timeout=0.3, lost_after_rounds=1)
    swarm = run_local_swarm(config, mute={2: 0})  # robot 2 sends nothing after round 0
    for i in (0, 1):
        assert swarm[i].round_k == ROUNDS - 1
        assert swarm[i].misses.gone(2), 'robot 2 is still waited for'
        assert 2 not in swarm[i].last_neighbors
