"""
The offline runner's rounds: every robot of a pair in one process, one :class:`RobotRound` each.

Each robot's :class:`DirectLink` puts its vectors straight into every other robot's inbox, so a
round here is the ROS robots' round (:mod:`dinno_ros.core.learning.round`) with every message on
time, except those named in ``late`` ((sender, receiver, round) triples), which miss their round
exactly as a message held back over DDS does.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterable, Sequence

import networkx as nx

from .agent import Observation, RobotAgent
from .evaluator import Evaluator
from .round import Position, RobotRound, RoundGraph, StateReport
from ..wire import PackedTensors

logger = logging.getLogger(__name__)


class DirectLink:
    """A robot's link in one process: its vectors land in every other robot's inbox at once."""

    def __init__(self, robot_id: int, swarm: OfflineSwarm) -> None:
        self.robot_id = robot_id
        self.swarm = swarm

    def send_weights(self, round_k: int, vector: str, packed: PackedTensors, degree: int) -> None:
        """Decode once, as every receiver would, and put the values into the others' inboxes."""
        values = self.swarm.by_id[self.robot_id].wire.decode(
            self.robot_id, round_k, vector, packed
        )
        for other in self.swarm.robots:
            if other.robot_id != self.robot_id:
                other.inbox.put(self.robot_id, round_k, vector, values, degree)

    def send_params(self, round_k: int, packed: PackedTensors) -> None:
        """Do nothing: the evaluator reads the parameters from the robots directly."""

    def send_state(self, state: StateReport) -> None:
        """Positions are read from the robots directly."""

    def show_observation(self, observation: Observation) -> None:
        """Nothing to show offline."""


class OfflineSwarm:
    """A pair's robots stepping their rounds together."""

    def __init__(
        self,
        agents: Sequence[RobotAgent],
        graph: RoundGraph,
        late: Iterable[Sequence[int]] = (),
        lost_after_rounds: int = 3,
    ) -> None:
        self.graph = graph
        late = [tuple(m) for m in late]
        self.robots = [
            RobotRound(a, graph, DirectLink(a.robot_id, self), lost_after_rounds, late)
            for a in agents
        ]
        self.by_id = {r.robot_id: r for r in self.robots}

    @property
    def agents(self) -> list[RobotAgent]:
        return [r.agent for r in self.robots]

    def poses(self) -> list:
        """Return where the moving robots are now: (x, y, yaw) each."""
        return [a.position for a in self.agents if a.position is not None]

    def positions(self) -> dict[int, Position | None]:
        """Return each robot's (x, y) now, None for robots that do not move."""
        return {r.robot_id: r.xy() for r in self.robots}

    def views(self) -> list:
        """Return what the metrics need of each robot now."""
        return [a.view() for a in self.agents]

    def run_round(self, k: int) -> tuple[list[dict[str, float]], nx.Graph]:
        """Run round k on every robot; return their step infos and the round's graph."""
        for robot in self.robots:
            robot.begin(k)
        positions = self.positions()
        for robot in self.robots:
            robot.send(k, positions)
        infos = [robot.finish(k, timeout=0.0) for robot in self.robots]
        return infos, self.graph.at(positions)


def evaluate_now(swarm: OfflineSwarm, evaluator: Evaluator, tag: int) -> dict[str, float]:
    """Evaluate the robots as they are, after ``tag`` rounds (the graph of their positions)."""
    evaluator.observe({}, swarm.poses())
    return evaluator.evaluate(tag, swarm.views(), swarm.graph.at(swarm.positions()))


def run_rounds(
    swarm: OfflineSwarm,
    rounds: int,
    evaluator: Evaluator | None = None,
    callback: Callable[[int, dict[str, Any]], None] | None = None,
    start: int = 0,
    progress: Any = None,
) -> list[dict[str, Any]]:
    """
    Run rounds ``start .. start+rounds-1``; returns one record per round.

    A record holds ``round``, ``train_loss`` (per robot), ``forward_passes``, ``num_edges`` and,
    when the models after the round were evaluated, the evaluator's summary ``eval``. Starting at
    round 0, the initial models are evaluated first. ``progress`` is an optional tqdm-like object
    updated once per round.
    """
    records = []
    if evaluator is not None and start == 0:
        evaluate_now(swarm, evaluator, 0)  # the initial models
    for k in range(start, start + rounds):
        infos, graph = swarm.run_round(k)
        record: dict[str, Any] = {
            'round': k,
            'train_loss': [float(i.get('train_loss', float('nan'))) for i in infos],
            'forward_passes': [int(a.optimizer.forward_passes) for a in swarm.agents],
            'num_edges': graph.number_of_edges(),
        }
        if evaluator is not None:
            losses = {
                a.robot_id: i['train_loss']
                for a, i in zip(swarm.agents, infos)
                if 'train_loss' in i
            }
            evaluator.observe(losses, swarm.poses())
            if evaluator.due(k + 1):
                record['eval'] = evaluator.evaluate(k + 1, swarm.views(), graph)
        if callback is not None:
            callback(k, record)
        if progress is not None:
            progress.update(1)
            if 'eval' in record:
                progress.set_postfix(
                    {k2: f'{v:.4g}' for k2, v in record['eval'].items() if k2 != 'round'},
                    refresh=False,
                )
        records.append(record)
    return records
