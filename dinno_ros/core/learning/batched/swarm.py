"""
The batched offline runner: a pair's robots as one stacked model, rounds as whole-swarm tensor ops.

:class:`BatchedSwarm` is a drop-in for :class:`~..simulation.OfflineSwarm` (``run_rounds`` runs
either): the same robots (their motion, minibatch generators and optimizers as built), the same
graph and Metropolis weights each round, every message on time. :func:`make_swarm` picks it when
the robots' optimizer and problem allow, else the per-robot runner, and logs which one runs.
"""

from __future__ import annotations

import logging
from typing import Iterable, Sequence

import networkx as nx

from .hood import Neighbourhood
from .model import stacked_loss, Unsupported
from .steps import Infos, Stepper, stepper_for
from ..agent import RobotAgent, RobotView
from ..round import Position, RobotWire, RoundGraph
from ..simulation import OfflineSwarm

logger = logging.getLogger(__name__)

RUNNERS = ('auto', 'batched', 'per_robot')


class BatchedSwarm:
    """A pair's robots stepping their rounds as one stacked model (see the module docstring)."""

    def __init__(self, agents: Sequence[RobotAgent], graph: RoundGraph) -> None:
        self.agents = list(agents)
        self.graph = graph
        optimizers = [a.optimizer for a in self.agents]
        self.stepper: Stepper = stepper_for(optimizers, stacked_loss([a.problem for a in agents]))
        self.ids = [a.robot_id for a in self.agents]
        self.message_bytes = [message_bytes(a) for a in self.agents]
        self._hood: tuple[nx.Graph, Neighbourhood] | None = None

    def poses(self) -> list:
        """Return where the moving robots are now: (x, y, yaw) each."""
        return [a.position for a in self.agents if a.position is not None]

    def positions(self) -> dict[int, Position | None]:
        """Return each robot's (x, y) now, None for robots that do not move."""
        return {
            a.robot_id: None
            if a.position is None
            else (float(a.position[0]), float(a.position[1]))
            for a in self.agents
        }

    def views(self) -> list[RobotView]:
        """Return what the metrics need of each robot now."""
        return [a.view() for a in self.agents]

    def run_round(self, k: int) -> tuple[Infos, nx.Graph]:
        """Run round k on every robot; return their step infos and the round's graph."""
        for agent in self.agents:
            agent.begin_round(k)
        graph = self.graph.at(self.positions())
        hood = self.neighbourhood(graph)
        infos = self.stepper.step(k, hood)
        self.stepper.write_back()
        for agent, info, sent, nbrs in zip(self.agents, infos, self.message_bytes, hood.neighbors):
            agent.last_info = info
            agent.bytes_sent += sent
            agent.bytes_received += len(nbrs) * sent
        return infos, graph

    def neighbourhood(self, graph: nx.Graph) -> Neighbourhood:
        """Return the round's neighbourhoods (kept while the graph is the same object)."""
        if self._hood is None or self._hood[0] is not graph:
            self._hood = (graph, Neighbourhood.of(graph, self.ids, self.stepper.params))
        return self._hood[1]


def message_bytes(agent: RobotAgent) -> int:
    """Return a robot's optimizer bytes per round as DDS carries them (``RobotWire``'s count)."""
    wire = RobotWire(agent)
    for vector, values in agent.outgoing().items():
        wire.encode(vector, values)
    return sum(wire.sizes.values())


def check_runner(runner: str) -> str:
    """Return ``runner`` if it is one of :data:`RUNNERS`; ValueError naming them otherwise."""
    if runner not in RUNNERS:
        raise ValueError(f'runner: {runner!r} not allowed; allowed: {", ".join(RUNNERS)}')
    return runner


def make_swarm(
    agents: Sequence[RobotAgent],
    graph: RoundGraph,
    late: Iterable[Sequence[int]] = (),
    lost_after_rounds: int = 3,
    runner: str = 'auto',
) -> OfflineSwarm | BatchedSwarm:
    """
    Return the offline runner of these robots: batched when it can, per-robot otherwise.

    ``runner``: ``auto`` (batched if supported), ``batched`` (ValueError when not supported) or
    ``per_robot``. Injected ``late`` messages need the per-robot runner.
    """
    check_runner(runner)
    late = [tuple(m) for m in late]
    reason = 'asked for' if runner == 'per_robot' else None
    if reason is None:
        try:
            if late:
                raise Unsupported('late messages are injected')
            swarm = BatchedSwarm(agents, graph)
            logger.info('offline runner: batched (%d robots as one stacked model)', len(agents))
            return swarm
        except Unsupported as exc:
            if runner == 'batched':
                raise ValueError(
                    f'runner: batched not possible here: {exc}; allowed: auto, per_robot'
                ) from None
            reason = str(exc)
    logger.info('offline runner: per-robot (%s)', reason)
    return OfflineSwarm(agents, graph, late, lost_after_rounds)
