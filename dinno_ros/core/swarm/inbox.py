"""
A robot's inbox of neighbour vectors, per round: what synchronous rounds over lossy links need.

The ROS robot node puts every validated vector here from its subscription threads; its training
thread waits for the neighbours' round-k messages (``wait_round``) with a timeout, then goes on
with the last complete message of a late neighbour and without a neighbour that missed too many
rounds.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
import threading
import time
from typing import Callable, Iterable

from dinno_ros.core.learning.optimizers.base import NeighborMessage
import torch


@dataclass
class RoundResult:
    messages: dict[int, NeighborMessage]  # what the optimizer steps with
    late: list[int] = field(
        default_factory=list
    )  # neighbours that sent nothing for this round in time
    stale: dict[int, int] = field(
        default_factory=dict
    )  # late neighbour -> round of the message used instead


class Board:
    """
    Shared state that threads put into and wait on.

    ``close`` wakes every waiter for good (shutdown).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.closed = False

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def _wait(self, done: Callable[[], bool], timeout: float) -> None:
        """With the lock held: wait until ``done()``, the timeout or ``close``."""
        deadline = time.monotonic() + timeout
        while not done() and not self.closed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._cond.wait(timeout=remaining)


class RoundInbox(Board):
    """Vectors by sender and round; thread-safe; keeps only recent rounds."""

    def __init__(self, vectors: Iterable[str], keep_rounds: int = 8) -> None:
        super().__init__()
        self.vectors = tuple(vectors)  # the names of the vectors a round needs from a sender
        self.keep_rounds = keep_rounds
        self._rounds: dict[int, dict[int, dict[str, torch.Tensor]]] = defaultdict(
            dict
        )  # sender -> round -> key
        self._degrees: dict[tuple[int, int], int] = {}
        self._latest: dict[
            int, tuple[int, NeighborMessage]
        ] = {}  # sender -> (round, complete message)

    def put(
        self, sender: int, round_k: int, vector: str, values: torch.Tensor, degree: int
    ) -> None:
        """Store one received vector's values (vectors the optimizer does not use are ignored)."""
        if vector not in self.vectors:
            return
        with self._cond:
            vectors = self._rounds[sender].setdefault(round_k, {})
            vectors[vector] = values
            self._degrees[(sender, round_k)] = degree
            if len(vectors) == len(self.vectors):
                latest = self._latest.get(sender)
                if latest is None or round_k >= latest[0]:
                    self._latest[sender] = (round_k, NeighborMessage(dict(vectors), degree))
                self._cond.notify_all()
            self._prune(sender, round_k)

    def _prune(self, sender: int, newest: int) -> None:
        rounds = self._rounds[sender]
        for old in [r for r in rounds if r < newest - self.keep_rounds]:
            del rounds[old]
            self._degrees.pop((sender, old), None)

    def _complete(self, sender: int, round_k: int) -> NeighborMessage | None:
        vectors = self._rounds.get(sender, {}).get(round_k)
        if vectors is None or len(vectors) != len(self.vectors):
            return None
        return NeighborMessage(dict(vectors), self._degrees[(sender, round_k)])

    def has_round(self, sender: int, round_k: int) -> bool:
        with self._cond:
            return self._complete(sender, round_k) is not None

    def latest_round(self, sender: int) -> int | None:
        with self._cond:
            latest = self._latest.get(sender)
            return None if latest is None else latest[0]

    def wait_round(self, round_k: int, senders: Iterable[int], timeout: float) -> RoundResult:
        """
        Return the senders' round-k messages, waiting up to ``timeout`` s.

        Late ones fall back to their latest.
        """
        wanted = set(senders)
        with self._cond:
            self._wait(
                lambda: all(self._complete(j, round_k) is not None for j in wanted), timeout
            )
            missing = {j for j in wanted if self._complete(j, round_k) is None}
            result = RoundResult({j: self._complete(j, round_k) for j in wanted - missing})
            for j in sorted(missing):
                result.late.append(j)
                latest = self._latest.get(j)
                if latest is not None and latest[0] < round_k:
                    result.stale[j] = latest[0]
                    result.messages[j] = latest[1]
            return result


class MissTracker:
    """Counts each neighbour's consecutive missed rounds; one past the limit is not waited for."""

    def __init__(self, lost_after_rounds: int) -> None:
        self.limit = lost_after_rounds
        self.misses: dict[int, int] = defaultdict(int)

    def record(self, on_time: Iterable[int], late: Iterable[int]) -> list[int]:
        """Update the counts; return the neighbours that just reached the limit."""
        for j in on_time:
            self.misses[j] = 0
        newly = []
        for j in late:
            self.misses[j] += 1
            if self.misses[j] == self.limit:
                newly.append(j)
        return newly

    def gone(self, j: int) -> bool:
        return self.misses[j] >= self.limit

    def split(self, neighbors: Iterable[int]) -> tuple[list[int], list[int]]:
        """(neighbours to wait for, neighbours considered gone)."""
        ns = list(neighbors)
        return [j for j in ns if not self.gone(j)], [j for j in ns if self.gone(j)]

    def revive(self, j: int) -> None:
        self.misses[j] = 0
