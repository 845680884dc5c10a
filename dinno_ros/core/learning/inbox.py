"""
A robot's inbox of neighbour vectors, per round: what synchronous rounds over lossy links need.

Whoever delivers vectors puts them here (the ROS node from its subscription threads, the offline
runner directly); the robot's round waits for its neighbours' round-k messages (``wait_round``)
with a timeout, then goes on with a late neighbour's newest earlier message. Messages named in
``late`` (sender, round) are held back until the robot's own round is over: injected lateness,
the same offline and over DDS (the robot steps without them as soon as they are in).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
import threading
import time
from typing import Callable, Iterable

import torch

from .optimizers.base import NeighborMessage


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

    def __init__(
        self,
        vectors: Iterable[str],
        keep_rounds: int = 8,
        late: Iterable[tuple[int, int]] = (),
    ) -> None:
        super().__init__()
        self.vectors = tuple(vectors)  # the names of the vectors a round needs from a sender
        self.keep_rounds = keep_rounds
        self.late = frozenset((int(j), int(k)) for j, k in late)  # (sender, round) held back
        self._rounds: dict[int, dict[int, dict[str, torch.Tensor]]] = defaultdict(
            dict
        )  # sender -> round -> vector name -> values
        self._degrees: dict[tuple[int, int], int] = {}
        self._latest: dict[int, int] = {}  # sender -> newest round with a complete message
        self._held: list[tuple[int, int, str, torch.Tensor, int]] = []

    def put(
        self, sender: int, round_k: int, vector: str, values: torch.Tensor, degree: int
    ) -> None:
        """Store one received vector's values (vectors the optimizer does not use are ignored)."""
        if vector not in self.vectors:
            return
        with self._cond:
            if (sender, round_k) in self.late:
                self._held.append((sender, round_k, vector, values, degree))
                self._cond.notify_all()
                return
            self._store(sender, round_k, vector, values, degree)

    def _store(
        self, sender: int, round_k: int, vector: str, values: torch.Tensor, degree: int
    ) -> None:
        vectors = self._rounds[sender].setdefault(round_k, {})
        vectors[vector] = values
        self._degrees[(sender, round_k)] = degree
        if len(vectors) == len(self.vectors):
            self._latest[sender] = max(round_k, self._latest.get(sender, round_k))
            self._cond.notify_all()
        self._prune(sender, self._latest.get(sender, round_k))

    def _prune(self, sender: int, newest: int) -> None:
        rounds = self._rounds[sender]
        for old in [r for r in rounds if r < newest - self.keep_rounds]:
            del rounds[old]
            self._degrees.pop((sender, old), None)

    def _complete(self, sender: int, round_k: int) -> NeighborMessage | None:
        vectors = self._rounds.get(sender, {}).get(round_k)
        if vectors is None or len(vectors) != len(self.vectors):
            return None
        return NeighborMessage(dict(vectors), self._degrees[(sender, round_k)], round_k)

    def _settled(self, sender: int, round_k: int) -> bool:
        """Whether the sender's round-k message is in, or is in but held back (injected late)."""
        if self._complete(sender, round_k) is not None:
            return True
        held = {m[2] for m in self._held if m[0] == sender and m[1] == round_k}
        return len(held) == len(self.vectors)

    def _newest_before(self, sender: int, round_k: int) -> int | None:
        rounds = [
            r
            for r in self._rounds.get(sender, {})
            if r < round_k and self._complete(sender, r) is not None
        ]
        return max(rounds) if rounds else None

    def has_round(self, sender: int, round_k: int) -> bool:
        with self._cond:
            return self._complete(sender, round_k) is not None

    def latest_round(self, sender: int) -> int | None:
        with self._cond:
            return self._latest.get(sender)

    def latest_mean(
        self, vector: str, senders: Iterable[int], timeout: float
    ) -> torch.Tensor | None:
        """
        Return the mean of the senders' newest ``vector`` (waiting up to ``timeout`` s for one).

        None when the optimizer sends no such vector or nobody sent one.
        """
        if vector not in self.vectors:
            return None
        wanted = set(senders)
        with self._cond:
            self._wait(lambda: bool(wanted & set(self._latest)), timeout)
            newest = [
                self._rounds[j][self._latest[j]][vector]
                for j in sorted(wanted & set(self._latest))
                if self._latest[j] in self._rounds[j]
            ]
        return torch.stack(newest).mean(dim=0) if newest else None

    def wait_settled(self, round_k: int, senders: Iterable[int], timeout: float) -> bool:
        """Wait up to ``timeout`` s for the senders' round-k messages; True when all are in."""
        wanted = set(senders)
        with self._cond:
            done = lambda: all(self._settled(j, round_k) for j in wanted)  # noqa: E731
            self._wait(done, timeout)
            return done()

    def wait_round(self, round_k: int, senders: Iterable[int], timeout: float) -> RoundResult:
        """
        Return the senders' round-k messages, waiting up to ``timeout`` s.

        A late sender's newest earlier complete message stands in for it (none: it is left out).
        A held-back message ends the wait as its arrival would (it is late, not lost) and is
        delivered once the wait is over, with every other held-back message of rounds up to k.
        """
        wanted = set(senders)
        with self._cond:
            self._wait(lambda: all(self._settled(j, round_k) for j in wanted), timeout)
            missing = {j for j in wanted if self._complete(j, round_k) is None}
            result = RoundResult({j: self._complete(j, round_k) for j in wanted - missing})
            for j in sorted(missing):
                result.late.append(j)
                before = self._newest_before(j, round_k)
                if before is not None:
                    result.stale[j] = before
                    result.messages[j] = self._complete(j, before)
            self._release(round_k)
            return result

    def _release(self, round_k: int) -> None:
        """Deliver the held-back messages of rounds up to ``round_k``: their round is over."""
        due = [m for m in self._held if m[1] <= round_k]
        self._held = [m for m in self._held if m[1] > round_k]
        for message in due:
            self._store(*message)


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
