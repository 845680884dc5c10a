"""
The monitor's bookkeeping (ROS-free): robots' vectors by round in, the learning core's metrics out.

A robot's ``params`` vector tagged t is its model before round t's step: tag 0 holds the initial
models, tag k+1 the models after round k (robots send a final tag-R vector after their last round).
The monitor reports every tag in order (the consensus error, and on evaluation rounds the
validation metrics), so its tag k+1 is exactly what the offline loop evaluates after round k.
Metrics come from the same ``Evaluator`` as the offline runner, fed with the robots' views
(:class:`~dinno_ros.core.learning.agent.RobotView`) whose models hold the received vectors.
"""

from __future__ import annotations

from collections import Counter
import dataclasses
from dataclasses import dataclass, field
import logging
import math
import threading
import time
from typing import Any

from dinno_ros.core.learning.agent import RobotView
from dinno_ros.core.learning.build import build_problem
from dinno_ros.core.learning.evaluator import Evaluator
from dinno_ros.core.learning.metrics import consensus_error
from dinno_ros.core.learning.round import RoundGraph
from dinno_ros.core.swarm.spec import SwarmSpec
import networkx as nx
import numpy as np
import torch

logger = logging.getLogger(__name__)
FINAL_GRACE_S = 5.0  # how long a finished robot's final vector may trail its finished state
RESEND_GRACE_S = 3.0  # how long a vector that never came is asked for again before going on


@dataclass
class RoundReport:
    round_k: int  # the vectors' tag: 0 = initial models, k + 1 = after round k
    robots: list[int]  # robots whose vectors went into this round
    consensus: dict[str, Any]  # consensus_error() of those vectors
    evaluation: dict[str, float] | None = None  # the Evaluator's summary on evaluation rounds
    per_robot: dict[str, list[float]] = field(
        default_factory=dict
    )  # e.g. validation_loss per robot
    lost: list[int] = field(default_factory=list)
    wire_bytes: list[tuple[int, int]] = field(default_factory=list)  # per robot: sent, received


class SwarmMonitor:
    """Collects vectors and states; turns each complete round into a RoundReport."""

    def __init__(self, spec: SwarmSpec, lost_after: float | None = None) -> None:
        self.spec = spec
        self.problem = build_problem(spec.experiment, spec.pair_key, device='cpu')
        pair = spec.pair
        if spec.section.monitor.evaluate_frequency:
            pair = dataclasses.replace(
                pair,
                evaluate_frequency=spec.section.monitor.evaluate_frequency,
                metrics_config=dataclasses.replace(pair.metrics_config, evaluate_frequency=None),
            )
        self.evaluator = Evaluator(self.problem, pair, spec.rounds, label=f'swarm/{spec.pair_key}')
        self.robots = {  # each robot as its last reported vectors show it
            i: RobotView(i, self.problem.base_model(), torch.empty(0))
            for i in range(spec.num_robots)
        }
        self.num_params = sum(p.numel() for p in self.problem.base_model().parameters())
        # the validation data is the monitor's alone: make it now, while the robots wait for us
        _ = self.problem.validation_set
        experiment = spec.experiment
        self.graph = RoundGraph.from_config(experiment.graph, spec.num_robots, experiment.seed)
        self.lost_after = lost_after if lost_after is not None else spec.section.monitor.lost_after
        self.vectors: dict[int, dict[int, torch.Tensor]] = {}  # round tag -> robot -> params
        self.poses: dict[int, dict[int, np.ndarray]] = {}  # round -> robot -> pose
        self.forward_passes: dict[
            int, dict[int, int]
        ] = {}  # round -> robot -> passes before that round
        self.wire_bytes: dict[int, dict[int, tuple[int, int]]] = {}  # round -> robot -> bytes
        self.finished: set[int] = set()
        self.lost: set[int] = set()
        self.started = time.monotonic()
        self.last_seen: dict[int, float] = {}
        self.next_round = 0  # the next tag to report
        self.reports: list[RoundReport] = []
        self.skipped: list[int] = []  # tags no vector of which ever arrived
        self.latest_tag: dict[int, int] = {}  # robot -> newest tag received (R: all rounds done)
        self.lost_reason: dict[int, str] = {}  # robot -> why it was declared lost
        # robot -> when its vectors went missing: since then every tag reported lacked it
        self.missing_since: dict[int, float] = {}
        self.resend_grace = RESEND_GRACE_S
        self.ignored: Counter[str] = Counter()  # messages put in but ignored, by reason
        self._lock = threading.Lock()

    # input ---------------------------------------------------------------------------------------
    def put_vector(self, robot: int, round_tag: int, vector: torch.Tensor) -> None:
        """
        Thread-safe and quick.

        Subscription callbacks call it while an evaluation may be running. A vector of a robot or
        round outside the run, or of the wrong size, is ignored (counted in ``ignored``).
        """
        why = self._outside(robot, round_tag)
        if why is None and vector.numel() != self.num_params:
            why = f'{vector.numel()} values, not {self.num_params}'
        if why is not None:
            self._ignore('vector', robot, round_tag, why)
            return
        with self._lock:
            if round_tag >= self.next_round:
                self.vectors.setdefault(round_tag, {})[robot] = vector.reshape(-1)
            self.latest_tag[robot] = max(round_tag, self.latest_tag.get(robot, -1))
            self._seen(robot)

    def put_state(
        self,
        robot: int,
        round_k: int,
        pose: np.ndarray,
        forward_passes: int,
        finished: bool,
        wire_bytes: tuple[int, int] | None = None,
    ) -> None:
        """
        Record a robot's state; ``wire_bytes``: (sent, received) optimizer bytes so far.

        A state of a robot or round outside the run, or with a pose that is no (x, y, yaw), is
        ignored (counted in ``ignored``).
        """
        why = self._outside(robot, round_k)
        pose = np.asarray(pose, dtype=np.float64).reshape(-1)
        if why is None and pose.shape != (3,):
            why = f'a pose of {pose.size} values, not (x, y, yaw)'
        if why is not None:
            self._ignore('state', robot, round_k, why)
            return
        with self._lock:
            self.poses.setdefault(round_k, {})[robot] = pose
            self.forward_passes.setdefault(round_k, {})[robot] = int(forward_passes)
            if wire_bytes is not None:
                self.wire_bytes.setdefault(round_k, {})[robot] = wire_bytes
            if finished:
                self.finished.add(robot)
            self._seen(robot)

    def _outside(self, robot: int, round_tag: int) -> str | None:
        """Return why a message of ``robot``, ``round_tag`` is outside the run; None if inside."""
        if robot not in self.robots:
            return f'no robot {robot} in this swarm of {len(self.robots)}'
        if not 0 <= round_tag <= self.spec.rounds:
            return f'round {round_tag} outside 0..{self.spec.rounds}'
        return None

    def _ignore(self, what: str, robot: int, round_tag: int, why: str) -> None:
        with self._lock:
            self.ignored[what] += 1
            first = self.ignored[what] == 1
        if first:  # the first of its kind: a flood of them must not flood the log
            logger.warning('ignored %s of robot %s round %s: %s', what, robot, round_tag, why)

    def _seen(self, robot: int) -> None:
        self.last_seen[robot] = time.monotonic()
        if robot in self.lost:
            self.lost.discard(robot)
            self.lost_reason.pop(robot, None)
            logger.info('robot_%d is back', robot)

    # progress ------------------------------------------------------------------------------------
    def update_lost(self, now: float | None = None) -> list[int]:
        """
        Robots silent for ``lost_after`` s more than a round may wait.

        Returns the newly lost.
        """
        now = time.monotonic() if now is None else now
        with self._lock:
            return self._update_lost(now)

    def _update_lost(self, now: float) -> list[int]:
        newly = []
        for i in self.robots:
            if i in self.lost or i in self.finished:
                continue
            since = self.last_seen.get(i)
            # a live robot is silent while it waits for its neighbours: up to round_timeout,
            # or startup_timeout until its round 0 is done
            started = self.latest_tag.get(i, -1) >= 1
            section = self.spec.section
            limit = self.lost_after + (
                section.round_timeout if started else section.startup_timeout
            )
            if now - (since if since is not None else self.started) > limit:
                self.lost.add(i)
                newly.append(i)
                self.lost_reason[i] = f'no message for {limit:.0f} s'
                logger.warning('robot_%d lost: no message for %.0f s', i, limit)
        return newly

    def _expected(self) -> set[int]:
        return set(self.robots) - self.lost

    def ready(self) -> bool:
        """
        Whether tag ``next_round`` can be reported.

        It can when every live robot's vector and state (its forward passes) of that round are in,
        or those missing have moved on to later tags (a lost message must not stall the monitor).

        - A missing vector: when a later vector of that robot is in and ``RESEND_GRACE_S`` s of
          asking for it again (:meth:`wanted`) passed. The grace runs once for a run of missing
          tags, not once each: a robot restarted at round 900 while the monitor reports 700 has
          no vectors of the tags between (nor has a robot that finished and left, of tags before
          the ``KEEP_PARAMS`` it keeps); 3 s each kept the monitor behind for ten minutes.
        - A missing state: when a later state is (the states travel on their own topic, and their
          callbacks may run after the vectors' even when they arrived first).
        """
        tag = self.next_round
        if tag > self.spec.rounds:
            return False
        have = set(self.vectors.get(tag, {}))
        if not have:
            return False
        now = time.monotonic()
        for r in have:
            self.missing_since.pop(r, None)
        moved = {
            r
            for r in self._moved_on(tag) - have
            if now - self.missing_since.setdefault(r, now) >= self.resend_grace
        }
        stateless = have - self.lost - set(self.forward_passes.get(tag, {}))
        states_moved = {r for t, robots in self.forward_passes.items() if t > tag for r in robots}
        return not (self._expected() - have - moved) and not (stateless - states_moved)

    def wanted(self) -> dict[int, list[int]]:
        """Robot -> round tags whose vectors never came though later ones did: to ask again."""
        with self._lock:
            tag = self.next_round
            have = set(self.vectors.get(tag, {}))
            missing = self._moved_on(tag) - have - self.lost if have else set()
            return {r: [tag] for r in sorted(missing)}

    def _asking(self) -> bool:
        """Whether a vector of tag ``next_round`` is being asked for again (within the grace)."""
        tag = self.next_round
        have = set(self.vectors.get(tag, {}))
        return bool(have) and bool(self._moved_on(tag) - have - self.lost)

    def _moved_on(self, tag: int) -> set[int]:
        return {r for t, robots in self.vectors.items() if t > tag for r in robots}

    def _skippable(self) -> bool:
        """No vector of tag ``next_round`` will come: every live robot has sent later ones."""
        tag = self.next_round
        return (
            tag <= self.spec.rounds
            and not self.vectors.get(tag)
            and bool(self._moved_on(tag))
            and not (self._expected() - self._moved_on(tag))
        )

    def process(self, limit: int | None = None) -> list[RoundReport]:
        """
        Every round that is complete now (at most ``limit``), in order.

        The evaluation runs without holding the lock.
        """
        out = []
        while limit is None or len(out) < limit:
            with self._lock:
                while self._skippable():
                    logger.warning('no vector of round %d arrived: skipping it', self.next_round)
                    self.skipped.append(self.next_round)
                    self.next_round += 1
                if not self.ready():
                    return out
                tag = self.next_round
                vectors = self.vectors.pop(tag)
                passes = dict(self.forward_passes.get(tag, {}))
                counts = self.wire_bytes.pop(tag, {})
                poses = dict(self.poses.get(max(tag - 1, 0), {}))  # tag 0: the start poses
                lost = sorted(self.lost)
                self.next_round += 1
            out.append(self._report(tag, vectors, passes, poses, lost, counts))
        return out

    def _report(
        self,
        tag: int,
        vectors: dict[int, torch.Tensor],
        passes: dict[int, int],
        poses: dict[int, np.ndarray],
        lost: list[int],
        counts: dict[int, tuple[int, int]] | None = None,
    ) -> RoundReport:
        ids = sorted(vectors)
        k = tag - 1  # the round whose step produced these vectors
        for i in ids:
            robot = self.robots[i]
            robot.params = vectors[i]
            with torch.no_grad():
                torch.nn.utils.vector_to_parameters(vectors[i], robot.model.parameters())
            robot.forward_passes = passes.get(i, robot.forward_passes)
            robot.position = poses.get(i, robot.position)
            if counts and i in counts:
                robot.bytes_sent, robot.bytes_received = counts[i]
        report = RoundReport(tag, ids, consensus_error([vectors[i] for i in ids]), lost=lost)
        report.wire_bytes = [
            (self.robots[i].bytes_sent or 0, self.robots[i].bytes_received or 0) for i in ids
        ]
        self.evaluator.observe({}, list(poses.values()))  # what the lidars saw in round k
        if self.evaluator.due(tag):
            agents = [self.robots[i] for i in ids]
            report.evaluation = self.evaluator.evaluate(tag, agents, self._graph(max(k, 0), ids))
            for name in ('validation_loss', 'validation_nll', 'top1_accuracy'):
                if name in self.evaluator.metrics and self.evaluator.metrics[name]:
                    report.per_robot[name] = [float(v) for v in self.evaluator.metrics[name][-1]]
        self.reports.append(report)
        return report

    def _graph(self, k: int, ids: list[int]) -> nx.Graph:
        """Return round k's graph among the robots ``ids``, from their round-k poses."""
        with self._lock:
            poses = dict(self.poses.get(k, {}))
        return self.graph.at(poses).subgraph(ids).copy()

    def done(self) -> bool:
        """Every robot finished or lost, and every round that can be processed was."""
        with self._lock:
            if self.next_round > self.spec.rounds:
                return True
            all_out = set(self.robots) <= (self.finished | self.lost)
            if not all_out or self.ready() or self._skippable() or self._asking():
                return False
            # a finished robot's last vector may still be on its way (another topic than its state)
            late = [i for i in self.finished if self.latest_tag.get(i, -1) < self.spec.rounds]
            return not late or time.monotonic() - max(self.last_seen.values()) > FINAL_GRACE_S

    def results(self) -> dict[str, Any]:
        """
        Return the experiment runner's results dict.

        Plus the monitor's per-round consensus summary.
        """
        out = self.evaluator.results()
        out['consensus_error_per_round'] = torch.tensor(
            [[r.round_k, r.consensus['min'], r.consensus['max']] for r in self.reports],
            dtype=torch.float64,
        ).reshape(-1, 3)
        out['evaluation_robots'] = [
            list(r.robots) for r in self.reports if r.evaluation is not None
        ]
        out['lost_robots'] = sorted(self.lost)
        out['skipped_rounds'] = list(self.skipped)
        out['rounds_configured'] = self.spec.rounds
        out['rounds_reported'] = self.rounds_reported
        out['rounds_completed'] = self.rounds_completed()
        out['complete'] = not self.shortfall()
        return out

    @property
    def rounds_reported(self) -> int:
        """Return how many rounds were reported (tags 1..R are the rounds' results)."""
        return max(self.next_round - 1, 0)

    def rounds_completed(self) -> dict[int, int]:
        """Robot -> rounds it completed, as its newest vector says (-1: nothing received)."""
        with self._lock:
            return {i: self.latest_tag.get(i, -1) for i in self.robots}

    def shortfall(self) -> list[str]:
        """One line per way this run fell short of its configured rounds (empty: complete)."""
        rounds = self.spec.rounds
        lines = [
            f'robot_{i} stopped after {n if n >= 0 else "no"} of {rounds} rounds'
            + (f' ({self.lost_reason[i]})' if i in self.lost_reason else '')
            for i, n in sorted(self.rounds_completed().items())
            if n < rounds
        ]
        if self.next_round <= rounds:
            lines.append(f'the monitor reported {self.rounds_reported} of {rounds} rounds')
        return lines


def fmt_report(r: RoundReport) -> str:
    """One log line for a round, in the research code's style."""
    line = f'round {r.round_k}: consensus {r.consensus["min"]:.3e} - {r.consensus["max"]:.3e}'
    if r.evaluation:
        labels = (
            ('validation_loss_mean', 'val loss'),
            ('top1_accuracy_mean', 'top1'),
            ('map_miou_seen_mean', 'mIoU seen'),
        )
        for key, label in labels:
            if key in r.evaluation and not math.isnan(r.evaluation[key]):
                line += f' | {label} {r.evaluation[key]:.4f}'
    if r.lost:
        line += f' | lost: {", ".join(f"robot_{i}" for i in r.lost)}'
    return line
