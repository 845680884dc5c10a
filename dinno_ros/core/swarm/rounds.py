"""
A robot's synchronous rounds over unreliable links (ROS-free; the node is its ``RobotLink``).

Round k: drive and scan; send the state (pose); find the round's neighbours (the configured
graph, or the disk graph of the robots' round-k positions); send the optimizer's vectors with
the degree; wait for the neighbours' round-k vectors, at most ``round_timeout`` s
(``startup_timeout`` in round 0); step. A late neighbour's last complete message is used and the
delay logged; a neighbour that missed ``lost_after_rounds`` rounds in a row is no longer waited for
(a dead robot never stalls the swarm) until it sends again.
"""

from __future__ import annotations

from dataclasses import dataclass
import logging
import math
import time
from typing import Any, Protocol

from dinno_ros.core.learning.agent import Observation
from dinno_ros.core.learning.graphs import build_graph, disk_graph
from dinno_ros.core.learning.simulation import build_agent
from dinno_ros.core.swarm.inbox import Board, MissTracker, RoundInbox
from dinno_ros.core.swarm.spec import SwarmSpec
import numpy as np
import torch


class Log(Protocol):
    """What ``RobotRounds`` logs to: a ROS node's logger or a ``logging.Logger``."""

    def info(self, msg: str) -> Any: ...
    def warning(self, msg: str) -> Any: ...


@dataclass(frozen=True)
class StateReport:
    """What a robot says of itself each round (``dinno_msgs/RobotState``)."""

    round_k: int
    pose: np.ndarray  # x, y, yaw in the map frame
    neighbors: list[int]  # whose messages the last step used
    finished: bool
    train_loss: float
    forward_passes: int
    dataset_size: int


class RobotLink(Protocol):
    """How a robot's rounds reach the others: the ROS node (in tests, other robots' inboxes)."""

    def send_weights(self, round_k: int, vector: str, values: torch.Tensor, degree: int) -> None:
        """Send one optimizer vector (``vector`` names it: params, tracker, ...) of round k."""
        ...

    def send_state(self, state: StateReport) -> None:
        """Send the robot's state of a round."""
        ...

    def show_observation(self, observation: Observation) -> None:
        """Show what the robot sensed this round (scans for RViz); may do nothing."""
        ...


def robot_device(device: str, robot_id: int) -> str:
    """
    Return the robot's torch device.

    ``cpu``, or with ``cuda``/``auto`` and GPUs the robots spread over them.
    """
    if device == 'cpu' or not torch.cuda.is_available():
        return 'cpu'
    if device.startswith('cuda:'):
        return device
    return f'cuda:{robot_id % torch.cuda.device_count()}'


class PositionBoard(Board):
    """The robots' positions by round, as their state messages report them; thread-safe."""

    def __init__(self) -> None:
        super().__init__()
        self._by_round: dict[int, dict[int, tuple[float, float]]] = {}
        self._latest: dict[int, tuple[int, tuple[float, float]]] = {}
        self.finished: set[int] = set()

    def put(
        self, robot: int, round_k: int, xy: tuple[float, float], finished: bool = False
    ) -> None:
        with self._cond:
            self._by_round.setdefault(round_k, {})[robot] = xy
            if robot not in self._latest or round_k >= self._latest[robot][0]:
                self._latest[robot] = (round_k, xy)
            if finished:
                self.finished.add(robot)
            for old in [r for r in self._by_round if r < round_k - 16]:
                del self._by_round[old]
            self._cond.notify_all()

    def wait_round(
        self, round_k: int, robots: set[int], timeout: float
    ) -> dict[int, tuple[float, float]]:
        """
        Round-k positions of ``robots`` (waiting up to ``timeout``).

        Late robots at their latest position.
        """
        with self._cond:
            self._wait(lambda: robots <= set(self._by_round.get(round_k, {})), timeout)
            now = dict(self._by_round.get(round_k, {}))
            for j in robots - set(now):
                if j in self._latest:
                    now[j] = self._latest[j][1]
            return {j: xy for j, xy in now.items() if j in robots}

    def wait_finished(self, robots: set[int], timeout: float) -> set[int]:
        with self._cond:
            self._wait(lambda: robots <= self.finished, timeout)
            return robots & self.finished


class RobotRounds:
    """Run one robot's rounds; everything it sends goes through its ``link``."""

    def __init__(
        self, spec: SwarmSpec, robot_id: int, link: RobotLink, log: Log | None = None
    ) -> None:
        self.spec = spec
        self.robot_id = int(robot_id)
        self.link = link
        self.log = log or logging.getLogger(f'robot_{robot_id}')
        self.device = robot_device(spec.experiment.device, robot_id)
        self.agent = build_agent(
            spec.experiment, spec.pair_key, spec.experiment.seed, robot_id, device=self.device
        )
        self.inbox = RoundInbox(self.agent.optimizer.sends)
        self.positions = PositionBoard()
        self.misses = MissTracker(spec.section.lost_after_rounds)
        self.others = [j for j in range(spec.num_robots) if j != self.robot_id]
        self.graph = (
            None
            if spec.dynamic_graph
            else build_graph(spec.experiment.graph, spec.num_robots, spec.experiment.seed)
        )
        self.last_neighbors: list[int] = []
        self.round_k = 0
        self.waited_s = 0.0  # time spent waiting for neighbours (overhead accounting)
        self.stopped = False

    def stop(self) -> None:
        """End the run at the next round boundary; wake any wait (Ctrl-C, shutdown)."""
        self.stopped = True
        self.inbox.close()
        self.positions.close()

    # neighbours ----------------------------------------------------------------------------------
    def neighbors(self, k: int) -> list[int]:
        if self.graph is not None:
            return sorted(int(j) for j in self.graph.neighbors(self.robot_id))
        alive = {j for j in self.others if not self.misses.gone(j)}
        known = self.positions.wait_round(k, alive, self._timeout(k))
        xy = np.full((self.spec.num_robots, 2), 1e12)  # unknown robots: far away
        xy[self.robot_id] = self.agent.position[:2]
        for j, p in known.items():
            xy[j] = p
        graph = disk_graph(xy, self.spec.experiment.graph.comm_radius, self.spec.num_robots)
        return sorted(int(j) for j in graph.neighbors(self.robot_id))

    def _timeout(self, k: int) -> float:
        return self.spec.section.startup_timeout if k == 0 else self.spec.section.round_timeout

    # one round -----------------------------------------------------------------------------------
    def step(self, k: int) -> dict[str, float]:
        obs = self.agent.begin_round(k)
        if obs is not None:
            self.link.show_observation(obs)
        self._send_state(k, finished=False)
        neighbors = self.neighbors(k)
        for j in neighbors:  # a gone neighbour that sent again is back
            latest = self.inbox.latest_round(j)
            if self.misses.gone(j) and latest is not None and latest >= k - 1:
                self.misses.revive(j)
                self.log.info(f'neighbour robot_{j} is back')
        wait_for, gone = self.misses.split(neighbors)
        self._send_weights(k, degree=len(wait_for))
        t0 = time.monotonic()
        result = self.inbox.wait_round(k, wait_for, self._timeout(k))
        self.waited_s += time.monotonic() - t0
        self._report(k, result, wait_for)
        self.last_neighbors = sorted(result.messages)
        return self.agent.finish_round(k, result.messages)

    def _report(self, k: int, result, wait_for: list[int]) -> None:
        on_time = [j for j in wait_for if j not in result.late]
        if result.late:
            used = ', '.join(
                f'robot_{j} (round {result.stale[j]})'
                if j in result.stale
                else f'robot_{j} (none)'
                for j in result.late
            )
            self.log.warning(
                f'round {k}: no round-{k} message in time from {used}; going on with the last ones'
            )
        for j in self.misses.record(on_time, result.late):
            self.log.warning(
                f'neighbour robot_{j} missed {self.misses.limit} rounds: '
                'not waiting for it any more'
            )

    def _send_weights(self, k: int, degree: int) -> None:
        for vector, values in self.agent.outgoing().items():
            self.link.send_weights(k, vector, values, degree)

    def _send_state(self, k: int, finished: bool) -> None:
        info = self.agent.last_info
        pose = self.agent.position if self.agent.position is not None else np.zeros(3)
        self.link.send_state(
            StateReport(
                round_k=k,
                pose=pose,
                neighbors=list(self.last_neighbors),
                finished=finished,
                train_loss=float(info.get('train_loss', math.nan)),
                forward_passes=int(getattr(self.agent.optimizer, 'forward_passes', 0)),
                dataset_size=int(len(getattr(self.agent.problem, 'dataset', ()) or ())),
            )
        )

    # whole run -----------------------------------------------------------------------------------
    def run(self) -> None:
        rounds = self.spec.rounds
        self.log.info(
            f'robot_{self.robot_id}: {rounds} rounds of {self.spec.pair.alg_name} '
            f'on {self.device}, {self.spec.num_robots} robots, '
            f'graph {self.spec.experiment.graph.type}'
        )
        t0 = t1 = time.monotonic()
        for k in range(rounds):
            if self.stopped:
                self.log.info(f'stopped in round {k}')
                return
            self.round_k = k
            info = self.step(k)
            if k == 0:
                t1 = time.monotonic()  # round 0 includes waiting for the swarm to come up
            if k % max(1, rounds // 10) == 0 or k == rounds - 1:
                self.log.info(
                    f'round {k}: train_loss {info.get("train_loss", math.nan):.4f}, '
                    f'neighbours {self.last_neighbors}'
                )
        t_end = time.monotonic()
        per_round = 1e3 * (t_end - t1) / max(rounds - 1, 1)
        self.log.info(
            f'finished {rounds} rounds in {t_end - t0:.1f} s ({self.waited_s:.1f} s waiting for '
            f'neighbours; {per_round:.1f} ms per round after round 0)'
        )
        self._send_state(rounds, finished=False)  # tag R's forward passes, before its vector
        self._send_weights(rounds, degree=len(self.last_neighbors))  # the final model: tag R
        self._send_state(rounds, finished=True)
        # stay until the others are done too: they may still need our last vectors
        # (transient local)
        alive = {j for j in self.others if not self.misses.gone(j)}
        self.positions.wait_finished(alive, self.spec.section.round_timeout)
