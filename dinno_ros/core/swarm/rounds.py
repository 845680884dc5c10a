"""
A robot's rounds over unreliable links in real time (ROS-free; the node is its ``RobotLink``).

Round k is :class:`~dinno_ros.core.learning.round.RobotRound`'s: drive and scan, send the state,
find the neighbours (the configured graph, or the disk graph of the robots' round-k positions as
their states report them, waiting up to the timeout for those), send the vectors, wait for the
neighbours' round-k vectors at most ``round_timeout`` s (``startup_timeout`` in round 0), step.

A robot restarted mid-run (same id, same swarm) rejoins: the others' recent states and vectors
reach it at once (transient local), so it starts at their current round from the mean of their
parameters with fresh optimizer state (:meth:`RobotRounds.join`), and they take it back as soon as
its vectors are current (``RobotRound.send``).
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from dinno_ros.core.learning.build import build_agent, build_problem
from dinno_ros.core.learning.inbox import Board, MissTracker
from dinno_ros.core.learning.round import Log, RESEND_AFTER_S, RobotLink, RobotRound, RoundGraph
from dinno_ros.core.swarm.spec import SwarmSpec
import torch

JOIN_LISTEN_S = 1.0  # how long a starting robot listens for a swarm already under way


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

    def newest_round(
        self, robots: set[int], timeout: float, quiet: float = 0.5, settle: float = 3.0
    ) -> int | None:
        """
        Return the newest round any of ``robots`` reported; None when nobody did in ``timeout`` s.

        Once one reported, listens on until no newer round came for ``quiet`` s (at most
        ``settle`` s): a late joiner receives the others' recent states oldest first.
        """
        with self._cond:
            self._wait(lambda: bool(robots & set(self._latest)), timeout)
            newest = self._newest(robots)
            deadline = time.monotonic() + settle
            while newest is not None and time.monotonic() < deadline:
                seen = newest
                self._wait(lambda: self._newest(robots) != seen, quiet)
                newest = self._newest(robots)
                if newest == seen:
                    break
            return newest

    def _newest(self, robots: set[int]) -> int | None:
        rounds = [self._latest[j][0] for j in robots if j in self._latest]
        return max(rounds) if rounds else None

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
        self.log = log or logging.getLogger(f'robot_{robot_id}')
        self.device = robot_device(spec.experiment.device, robot_id)
        problem = build_problem(spec.experiment, spec.pair_key, device=self.device)
        self.agent = build_agent(spec.experiment, spec.pair_key, problem, robot_id)
        experiment = spec.experiment
        graph = RoundGraph.from_config(experiment.graph, spec.num_robots, experiment.seed)
        self.round = RobotRound(
            self.agent,
            graph,
            link,
            spec.section.lost_after_rounds,
            spec.section.late_messages,
            self.log,
            spec.section.max_abs_value,
        )
        self.inbox = self.round.inbox
        self.positions = PositionBoard()
        self.others = [j for j in range(spec.num_robots) if j != self.robot_id]
        self.round_k = 0
        self.joining = True  # until join() decided the first round: any round of the run is news
        self.stopped = False

    @property
    def last_neighbors(self) -> list[int]:
        return self.round.last_neighbors

    @property
    def misses(self) -> MissTracker:
        return self.round.misses

    @property
    def window_round(self) -> int | None:
        """Return the round incoming messages are judged against (None while joining: any)."""
        return None if self.joining else self.round_k

    def summary(self) -> dict[str, Any]:
        """Return what the robot's run came to (written when no monitor reported it)."""
        agent = self.agent
        return {
            'robot_id': self.robot_id,
            'rounds_configured': self.spec.rounds,
            'rounds_completed': self.round_k + 1,
            'last_info': dict(agent.last_info),
            'forward_passes': int(agent.optimizer.forward_passes),
            'dataset_size': agent.dataset_size,
            'bytes_sent': agent.bytes_sent,
            'bytes_received': agent.bytes_received,
            'neighbors': list(self.last_neighbors),
            'alg_name': self.spec.pair.alg_name,
        }

    def stop(self) -> None:
        """End the run at the next round boundary; wake any wait (Ctrl-C, shutdown)."""
        self.stopped = True
        self.inbox.close()
        self.positions.close()

    def _timeout(self, k: int) -> float:
        return self.spec.section.startup_timeout if k == 0 else self.spec.section.round_timeout

    def _alive(self) -> set[int]:
        return {j for j in self.others if not self.round.misses.gone(j)}

    def step(self, k: int) -> dict[str, float]:
        """Run round k."""
        self.round.begin(k)
        positions = {}
        if self.round.graph.dynamic:
            positions = self.positions.wait_round(k, self._alive(), self._timeout(k))
        self.round.send(k, positions)
        return self.round.finish(k, self._timeout(k))

    def join(self, listen_s: float = JOIN_LISTEN_S) -> int:
        """
        Return the round to start at: 0 in a swarm that starts now.

        A swarm already under way (a restarted robot: the others' states of later rounds arrive,
        kept for late joiners) is joined at its newest round, from the mean of the neighbours'
        latest parameters, with fresh optimizer state.
        """
        newest = self.positions.newest_round(set(self.others), listen_s)
        start = 0 if newest is None or newest < 1 else min(newest, self.spec.rounds - 1)
        if start:
            params = self.inbox.latest_mean('params', self.others, listen_s)
            self.agent.optimizer.resume(start, params)
            self.log.warning(
                f'robot_{self.robot_id} rejoins the swarm at round {start} '
                + (
                    "from its neighbours' mean parameters"
                    if params is not None
                    else 'from its initial model (no neighbour sent parameters)'
                )
            )
        self.round_k = start
        self.joining = False
        return start

    def run(self) -> None:
        """Run every round, then send the final model and wait for the others to finish."""
        rounds = self.spec.rounds
        self.log.info(
            f'robot_{self.robot_id}: {rounds} rounds of {self.spec.pair.alg_name} '
            f'on {self.device}, {self.spec.num_robots} robots, '
            f'graph {self.spec.experiment.graph.type}'
        )
        t0 = t1 = time.monotonic()
        start = self.join()
        for k in range(start, rounds):
            if self.stopped:
                self.log.info(f'stopped in round {k}')
                return
            self.round_k = k
            info = self.step(k)
            if k == start:
                t1 = time.monotonic()  # round 0 includes waiting for the swarm to come up
            if k % max(1, rounds // 10) == 0 or k == rounds - 1:
                self.log.info(
                    f'round {k}: train_loss {info.get("train_loss", math.nan):.4f}, '
                    f'neighbours {self.last_neighbors}'
                )
        t_end = time.monotonic()
        per_round = 1e3 * (t_end - t1) / max(rounds - start - 1, 1)
        done = f'{rounds} rounds' if start == 0 else f'rounds {start}-{rounds - 1} (rejoined)'
        self.log.info(
            f'finished {done} in {t_end - t0:.1f} s ({self.round.waited_s:.1f} s waiting for '
            f'neighbours; {per_round:.1f} ms per round after the first; '
            f'{self.round.resent} vectors sent again)'
        )
        self.round.send_final(rounds)
        self._wait_for_the_others(rounds)

    def _wait_for_the_others(self, rounds: int) -> None:
        """
        Stay until the others are done too: they may still need our last vectors.

        Sent again every ``RESEND_AFTER_S`` s meanwhile, as in a round.
        """
        deadline = time.monotonic() + self.spec.section.round_timeout
        while time.monotonic() < deadline and not self.stopped:
            pause = min(RESEND_AFTER_S, deadline - time.monotonic())
            alive = self._alive()
            if self.positions.wait_finished(alive, pause) == alive or self.stopped:
                return
            self.round.resend(rounds)
