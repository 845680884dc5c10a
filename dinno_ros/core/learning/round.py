"""
One robot's round: the round logic the offline runner, the ROS robot node and the monitor share.

Round k of robot i, as :class:`RobotRound` runs it::

    state = robot.begin(k)           # drive to the round-k pose and scan; send the state
    robot.send(k, positions)         # neighbours from the graph and the known positions; send
                                     # the optimizer's vectors with the robot's degree
    info = robot.finish(k, timeout)  # the neighbours' round-k vectors (or the timeout); step

The rules, the same offline and over DDS:

* **neighbours**: the configured graph, or the disk graph of the robots' round-k positions
  (:class:`RoundGraph`); a robot whose position is unknown has no links;
* **degree**: the number of neighbours the robot waits for (those not declared gone); it travels
  with the vectors and both ends of a link use it for their Metropolis weights;
* **late**: a neighbour whose round-k vectors are not in when the wait ends is replaced by its
  newest earlier complete message, or left out when there is none; one late
  ``lost_after_rounds`` rounds in a row is no longer waited for, until it sends again;
* **re-sent**: a robot still waiting sends its last two rounds' vectors again every
  ``RESEND_AFTER_S`` s: a message pushed out of a receiver's queue (a flood on its topic) costs
  about a second, not the round's timeout. Receivers keep one copy per round.

The robot reaches the others only through its :class:`RobotLink`.
"""

from __future__ import annotations

from dataclasses import dataclass
import logging
import math
import time
from typing import Any, Iterable, Mapping, Protocol, Sequence

import networkx as nx
import numpy as np
import torch

from .agent import Observation, RobotAgent
from .graphs import build_graph, disk_graph, fiedler_value, GraphConfig
from .inbox import MissTracker, RoundInbox, RoundResult
from ..weights_cdr import weights_wire_bytes
from ..wire import (
    check_bound,
    pack_tensors,
    pack_vector,
    PackedTensors,
    TensorLayout,
    unpack_tensors,
    unpack_vector,
)

logger = logging.getLogger(__name__)

Position = Sequence[float]  # (x, y, ...) world metres
KEEP_PARAMS = 32  # round tags whose parameter vectors a robot keeps for the monitor's requests
RESEND_AFTER_S = 1.0  # a robot still waiting this long sends its last rounds' vectors again


class Log(Protocol):
    """What a robot logs to: a ROS node's logger or a ``logging.Logger``."""

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
    bytes_sent: int = 0  # optimizer messages so far (RobotWire's count)
    bytes_received: int = 0


class RobotLink(Protocol):
    """How a robot's round reaches the others: the ROS node, or other robots' inboxes."""

    def send_weights(self, round_k: int, vector: str, packed: PackedTensors, degree: int) -> None:
        """Send one optimizer vector (``vector`` names it: params, tracker, ...) of round k."""
        ...

    def send_params(self, round_k: int, packed: PackedTensors) -> None:
        """
        Send the parameters to the monitor alone (not to the robots).

        Called when the optimizer's own vectors do not carry them (Choco-SGD sends compressed
        updates); not counted as optimizer traffic.
        """
        ...

    def send_state(self, state: StateReport) -> None:
        """Send the robot's state of a round."""
        ...

    def show_observation(self, observation: Observation) -> None:
        """Show what the robot sensed this round (scans for RViz); may do nothing."""
        ...


class RoundGraph:
    """The communication graph of a round: fixed, or the disk graph of the known positions."""

    def __init__(
        self, num_robots: int, fixed: nx.Graph | None = None, comm_radius: float | None = None
    ) -> None:
        if (fixed is None) == (comm_radius is None):
            raise ValueError('a round graph is either fixed or a disk graph with a comm_radius')
        self.num_robots = int(num_robots)
        self.fixed = fixed
        self.comm_radius = comm_radius

    @classmethod
    def from_config(cls, config: GraphConfig, num_robots: int, seed: int) -> RoundGraph:
        """Build the ``graph:`` section's round graph over robots 0..num_robots-1."""
        if config.type == 'disk':
            return cls(num_robots, comm_radius=config.comm_radius)
        graph = build_graph(config, num_robots, seed)
        logger.info(
            'graph %s: %d nodes, %d edges, Fiedler value %.4f',
            config.type,
            graph.number_of_nodes(),
            graph.number_of_edges(),
            fiedler_value(graph),
        )
        return cls(num_robots, fixed=graph)

    @property
    def dynamic(self) -> bool:
        """Return whether the graph follows the robots' positions."""
        return self.fixed is None

    def at(self, positions: Mapping[int, Position | None]) -> nx.Graph:
        """Return the graph for these positions (robots without one have no links)."""
        if self.fixed is not None:
            return self.fixed
        graph = nx.empty_graph(self.num_robots)
        known = sorted(i for i, p in positions.items() if p is not None)
        if len(known) > 1:
            xy = np.array([np.asarray(positions[i], dtype=float)[:2] for i in known])
            links = disk_graph(xy, self.comm_radius).edges
            graph.add_edges_from((known[u], known[v]) for u, v in links)
        return graph

    def neighbors(self, robot_id: int, positions: Mapping[int, Position | None]) -> list[int]:
        """Return robot ``robot_id``'s neighbours for these positions, sorted."""
        return sorted(int(j) for j in self.at(positions).neighbors(robot_id))


class RobotWire:
    """
    Where an optimizer's vector becomes wire tensors, and wire tensors a vector again.

    Dense vectors travel as the model's float32 tensors; a vector the optimizer compresses
    (``compressor_of``) travels as its compressor's arrays. Counts the bytes of what it encodes as
    DDS carries them (``weights_wire_bytes``).
    """

    def __init__(self, agent: RobotAgent, max_abs: float | None = None) -> None:
        self.optimizer = agent.optimizer
        self.layout = TensorLayout.from_model(agent.model)
        self.max_abs = max_abs  # a received entry beyond it: WireError (None: no bound)
        self.sizes: dict[str, int] = {}  # vector -> bytes of its last message

    def encode(self, vector: str, values: torch.Tensor) -> PackedTensors:
        """Return the wire tensors of this round's ``vector``."""
        arrays = self.optimizer.wire_arrays(vector)
        packed = (
            pack_vector(values, self.layout, copy=False)  # outgoing() vectors are fresh copies
            if arrays is None
            else pack_tensors(arrays)
        )
        self.sizes[vector] = weights_wire_bytes(packed, vector)
        return packed

    def decode(
        self, sender: int, round_k: int, vector: str, packed: PackedTensors
    ) -> torch.Tensor:
        """Return a received vector's values; raise WireError when it is malformed."""
        compressor = self.optimizer.compressor_of(vector)
        if compressor is None:
            return unpack_vector(packed, self.layout, max_abs=self.max_abs)
        values = compressor.decode(unpack_tensors(packed), sender, round_k)
        return check_bound(values, self.max_abs)


def late_for(receiver: int, late: Iterable[Sequence[int]]) -> list[tuple[int, int]]:
    """Return the (sender, round) of the ``late`` (sender, receiver, round) that reach us."""
    return [(int(j), int(k)) for j, i, k in late if int(i) == int(receiver)]


class RobotRound:
    """One robot's side of every round: its agent, inbox and missed-round counts."""

    def __init__(
        self,
        agent: RobotAgent,
        graph: RoundGraph,
        link: RobotLink,
        lost_after_rounds: int = 3,
        late: Iterable[Sequence[int]] = (),
        log: Log | None = None,
        max_abs: float | None = None,
    ) -> None:
        self.agent = agent
        self.robot_id = agent.robot_id
        self.graph = graph
        self.link = link
        self.log = log or logging.getLogger(f'robot_{self.robot_id}')
        self.inbox = RoundInbox(agent.optimizer.vectors, late=late_for(self.robot_id, late))
        self.wire = RobotWire(agent, max_abs)
        self.misses = MissTracker(lost_after_rounds)
        self.wait_for: list[int] = []  # this round's neighbours that are waited for
        self.last_neighbors: list[int] = []  # whose messages the last step used
        self.waited_s = 0.0  # time spent waiting for neighbours
        self.sent: dict[int, list[tuple[str, PackedTensors, int]]] = {}  # last 2 rounds' vectors
        self.resent = 0  # vectors sent again while waiting (not counted as optimizer bytes)
        # the parameter vectors of the last KEEP_PARAMS round tags (and their degree; None: sent
        # on params), for the monitor's requests to send them again
        self.params_sent: dict[int, tuple[PackedTensors, int | None]] = {}

    @property
    def degree(self) -> int:
        """Return this round's degree: the neighbours waited for."""
        return len(self.wait_for)

    def begin(self, k: int) -> StateReport:
        """Drive to the round-k pose and scan; send and return the state."""
        obs = self.agent.begin_round(k)
        if obs is not None:
            self.link.show_observation(obs)
        return self.send_state(k)

    def send(self, k: int, positions: Mapping[int, Position | None]) -> list[int]:
        """Find the neighbours, send the vectors with the degree; return whom to wait for."""
        neighbors = self.graph.neighbors(self.robot_id, {**positions, self.robot_id: self.xy()})
        for j in neighbors:  # a gone neighbour that sent again is back
            latest = self.inbox.latest_round(j)
            if self.misses.gone(j) and latest is not None and latest >= k - 1:
                self.misses.revive(j)
                self.log.info(f'neighbour robot_{j} is back')
        self.wait_for, _ = self.misses.split(neighbors)
        self.send_weights(k)
        return self.wait_for

    def finish(self, k: int, timeout: float) -> dict[str, float]:
        """Take the neighbours' round-k messages (waiting up to ``timeout`` s) and step."""
        t0 = time.monotonic()
        self._wait_resending(k, t0 + timeout)
        result = self.inbox.wait_round(k, self.wait_for, 0.0)
        self.waited_s += time.monotonic() - t0
        self._account(k, result)
        fresh = [j for j in result.messages if j not in result.late]
        self.agent.bytes_received += len(fresh) * sum(self.wire.sizes.values())
        self.last_neighbors = sorted(result.messages)
        return self.agent.finish_round(k, result.messages, self.degree)

    def _wait_resending(self, k: int, deadline: float) -> None:
        """Wait for the round-k messages until ``deadline``, re-sending ours now and then."""
        while True:
            remaining = deadline - time.monotonic()
            pause = min(RESEND_AFTER_S, remaining)
            if remaining <= 0 or self.inbox.wait_settled(k, self.wait_for, pause):
                return
            if self.inbox.closed:  # stopping: nothing more goes out
                return
            if time.monotonic() < deadline:
                self.resend(k)

    def resend(self, k: int) -> None:
        """Send the vectors of rounds k - 1 and k again (a neighbour may have lost them)."""
        for round_k in (k - 1, k):
            for vector, packed, degree in self.sent.get(round_k, []):
                self.link.send_weights(round_k, vector, packed, degree)
                self.resent += 1

    def _account(self, k: int, result: RoundResult) -> None:
        on_time = [j for j in self.wait_for if j not in result.late]
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

    def xy(self) -> Position | None:
        """Return the robot's (x, y), None when it does not move."""
        pose = self.agent.position
        return None if pose is None else (float(pose[0]), float(pose[1]))

    def send_weights(self, k: int, counted: bool = True) -> None:
        """Send the optimizer's vectors of round k; ``counted``: they are optimizer traffic."""
        sent = self.sent.setdefault(k, [])
        for vector, values in self.agent.outgoing().items():
            packed = self.wire.encode(vector, values)
            if counted:
                self.agent.bytes_sent += self.wire.sizes[vector]
            self.link.send_weights(k, vector, packed, self.degree)
            sent.append((vector, packed, self.degree))
            if vector == 'params':
                self.params_sent[k] = (packed, self.degree)
        for old in [r for r in self.sent if r < k - 1]:
            del self.sent[old]
        if 'params' not in self.inbox.vectors:
            packed = pack_vector(self.agent.params(), self.wire.layout)
            self.link.send_params(k, packed)
            self.params_sent[k] = (packed, None)
        for old in [r for r in self.params_sent if r < k - KEEP_PARAMS]:
            del self.params_sent[old]

    def resend_params(self, rounds: Iterable[int]) -> int:
        """
        Send the parameter vectors of these round tags again (the monitor asks); return how many.

        Only the last ``KEEP_PARAMS`` rounds' are kept; thread-safe (the receiving thread calls).
        """
        count = 0
        for k in rounds:
            kept = self.params_sent.get(int(k))
            if kept is None:
                continue
            packed, degree = kept
            if degree is None:
                self.link.send_params(int(k), packed)
            else:
                self.link.send_weights(int(k), 'params', packed, degree)
            count += 1
        self.resent += count
        return count

    def receive(
        self, sender: int, round_k: int, vector: str, packed: PackedTensors, degree: int
    ) -> None:
        """Decode and validate a neighbour's vector into the inbox; WireError when malformed."""
        if vector in self.inbox.vectors:
            values = self.wire.decode(sender, round_k, vector, packed)
            self.inbox.put(sender, round_k, vector, values, degree)

    def send_state(self, k: int, finished: bool = False) -> StateReport:
        info = self.agent.last_info
        pose = self.agent.position if self.agent.position is not None else np.zeros(3)
        state = StateReport(
            round_k=k,
            pose=pose,
            neighbors=list(self.last_neighbors),
            finished=finished,
            train_loss=float(info.get('train_loss', math.nan)),
            forward_passes=int(self.agent.optimizer.forward_passes),
            dataset_size=self.agent.dataset_size,
            bytes_sent=self.agent.bytes_sent,
            bytes_received=self.agent.bytes_received,
        )
        self.link.send_state(state)
        return state

    def send_final(self, rounds: int) -> None:
        """After the last round: the state and the final model (tag R), then ``finished``."""
        self.send_state(rounds)  # tag R's forward passes, before its vector
        self.send_weights(rounds, counted=False)  # for the monitor: no robot steps with them
        self.send_state(rounds, finished=True)
