"""
Robots' rounds in one process: each robot's ``RobotLink`` puts straight into the others' inboxes.

The same per-robot rounds that run in the ROS node, without DDS: with every message on time they
reach exactly the offline runner's weights; a robot that stops sending does not stall the others.
"""

from __future__ import annotations

from pathlib import Path
import threading

from conftest import CONFIGS
from dinno_ros.core.learning.simulation import build_agents, graph_builder, run_rounds
from dinno_ros.core.swarm.rounds import RobotRounds, StateReport
from dinno_ros.core.swarm.spec import load_swarm
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

    def send_weights(self, round_k: int, vector: str, values: torch.Tensor, degree: int) -> None:
        for other in self._others(round_k):
            other.inbox.put(self.robot_id, round_k, vector, values.detach().clone(), degree)

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


def test_local_swarm_matches_the_offline_runner(tmp_path):
    config = dinno_config(tmp_path)
    swarm = run_local_swarm(config)
    spec = load_swarm(config)
    agents = build_agents(spec.experiment, spec.pair_key, spec.experiment.seed, 'cpu')
    run_rounds(agents, graph_builder(spec.experiment), ROUNDS)
    for agent in agents:
        local = swarm[agent.robot_id].agent.params()
        assert torch.allclose(local, agent.params(), rtol=1e-5, atol=1e-6), agent.robot_id


def test_a_robot_whose_radio_dies_does_not_stall_the_others(tmp_path):
    config = dinno_config(tmp_path, round_timeout=0.3, lost_after_rounds=1)
    swarm = run_local_swarm(config, mute={2: 0})  # robot 2 sends nothing after round 0
    for i in (0, 1):
        assert swarm[i].round_k == ROUNDS - 1
        assert swarm[i].misses.gone(2), 'robot 2 is still waited for'
        assert 2 not in swarm[i].last_neighbors
