"""
Swarm identity and authenticated senders: who may speak in a swarm, and a gate for what arrives.

Every run has an id (config name, seed, a random nonce) and a 32-byte key, made by whoever starts
the nodes (``dinno-swarm``, the launch file) and handed to them in the environment
(``DINNO_SWARM_ID``, ``DINNO_SWARM_KEY``), never on a command line. Every message carries the id
and an HMAC-SHA256 (standard library) over a canonical header and its payload. A receiver's
:class:`MessageGate` drops, and counts, messages of other swarms, senders that do not match the
topic they came on, rounds far from its own, and bad or missing MACs; its warnings are
rate-limited. A node started without a key (``ros2 run`` by hand) sends and accepts unsigned
messages of its swarm id and says so once.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import time
from typing import Any, Callable, Mapping, Sequence

ID_ENV = 'DINNO_SWARM_ID'
KEY_ENV = 'DINNO_SWARM_KEY'  # 64 hex digits
MAC_BYTES = 32
ROUND_WINDOW = 16  # rounds either side of a robot's own that a message may belong to

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SwarmCredentials:
    """A swarm's id and key (None: unauthenticated)."""

    swarm_id: str
    key: bytes | None = None

    @classmethod
    def new(cls, name: str, seed: int, env: Mapping[str, str] = os.environ) -> SwarmCredentials:
        """
        Return fresh credentials for a run: ``name-seed-nonce`` and a random key.

        Those already in ``env`` win (a swarm spread over several hosts shares them).
        """
        if env.get(ID_ENV) and env.get(KEY_ENV):
            return cls.from_env(name, env)
        return cls(f'{name}-{seed}-{secrets.token_hex(4)}', secrets.token_bytes(32))

    @classmethod
    def from_env(cls, default_id: str, env: Mapping[str, str] = os.environ) -> SwarmCredentials:
        """Return the credentials a node was started with; ValueError for a malformed key."""
        raw = env.get(KEY_ENV, '')
        try:
            key = bytes.fromhex(raw) if raw else None
        except ValueError:
            key = None
        if raw and (key is None or len(key) < 16):
            raise ValueError(f'{KEY_ENV}: expected at least 32 hex digits')
        return cls(env.get(ID_ENV) or default_id, key)

    def env(self) -> dict[str, str]:
        """Return the environment entries that hand these credentials to a node."""
        out = {ID_ENV: self.swarm_id}
        if self.key is not None:
            out[KEY_ENV] = self.key.hex()
        return out

    def sign(self, header: bytes, payload: Any = b'') -> bytes:
        """Return the MAC of a message (empty without a key)."""
        if self.key is None:
            return b''
        mac = hmac.new(self.key, len(header).to_bytes(8, 'little') + header, hashlib.sha256)
        mac.update(memoryview(payload).cast('B') if not isinstance(payload, bytes) else payload)
        return mac.digest()

    def verify(self, header: bytes, payload: Any, mac: bytes) -> bool:
        """Return whether ``mac`` is this swarm's MAC of the message (True without a key)."""
        if self.key is None:
            return True
        return len(mac) == MAC_BYTES and hmac.compare_digest(self.sign(header, payload), mac)


def canonical_header(kind: str, swarm_id: str, **fields: Any) -> bytes:
    """Return the bytes a MAC covers besides the payload: every field, in one fixed encoding."""
    return json.dumps(
        {'kind': kind, 'swarm': swarm_id, **fields}, sort_keys=True, separators=(',', ':')
    ).encode()


class RateLimitedLog:
    """At most one line per key every ``period`` s; the next says how many were held back."""

    def __init__(
        self,
        emit: Callable[[str], Any],
        period: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.emit, self.period, self.clock = emit, period, clock
        self._last: dict[str, float] = {}
        self._held = Counter()

    def warn(self, key: str, line: str) -> None:
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.period:
            self._held[key] += 1
            return
        held = self._held.pop(key, 0)
        self._last[key] = now
        self.emit(line + (f' ({held} more like it since the last line)' if held else ''))


class MessageGate:
    """
    Admit or drop what arrives for one node; counts drops by reason.

    ``admit`` returns None for a message to take, else the reason it was dropped (and warns,
    rate-limited). ``robots`` are the swarm's ids; ``window`` the rounds either side of the
    receiver's own that may arrive (messages further off are stale or forged); ``max_round`` the
    run's last round tag.
    """

    def __init__(
        self,
        credentials: SwarmCredentials,
        robots: Sequence[int],
        window: int,
        warn: Callable[[str], Any],
        max_round: int | None = None,
    ) -> None:
        self.credentials = credentials
        self.robots = frozenset(robots)
        self.window = int(window)
        self.max_round = max_round  # the run's last tag: later rounds are forged
        self.dropped: Counter[str] = Counter()
        self.log = RateLimitedLog(warn)
        if credentials.key is None:
            warn(f'no {KEY_ENV}: messages are neither signed nor checked (start with dinno-swarm)')

    def admit(
        self,
        what: str,
        swarm_id: str,
        sender: int,
        topic_sender: int | None,
        round_k: int,
        own_round: int | None,
        header: bytes,
        payload: Any,
        mac: bytes,
    ) -> str | None:
        """Return None to take the message, else why it is dropped."""
        reason = self._reason(swarm_id, sender, topic_sender, round_k, own_round)
        if reason is None and not self.credentials.verify(header, payload, bytes(mac)):
            reason = 'bad or missing MAC'
        if reason is not None:
            self.dropped[reason] += 1
            self.log.warn(reason, f'dropped {what} from robot {sender} round {round_k}: {reason}')
        return reason

    def oversized(self, what: str, topic_robot: int, size: int, limit: int) -> None:
        """Count and report a message dropped unread for its size."""
        self.dropped['too large'] += 1
        self.log.warn(
            'too large',
            f"dropped {what} on robot {topic_robot}'s topic unread: {size} bytes, over {limit}",
        )

    def malformed(self, what: str, sender: int, round_k: int, error: Exception) -> None:
        """Count and report a message that failed to decode (one line per kind of fault)."""
        self.dropped['malformed'] += 1
        self.log.warn(
            re.sub(r'[0-9.e+-]+', 'N', str(error)),  # the kind of fault, not its values
            f'ignored {what} from robot {sender} round {round_k}: {error}',
        )

    def _reason(
        self,
        swarm_id: str,
        sender: int,
        topic_sender: int | None,
        round_k: int,
        own_round: int | None,
    ) -> str | None:
        if swarm_id != self.credentials.swarm_id:
            return 'another swarm'
        if sender not in self.robots:
            return 'sender not in the swarm'
        if topic_sender is not None and sender != topic_sender:
            return 'sender does not match its topic'
        if round_k < 0 or (self.max_round is not None and round_k > self.max_round):
            return 'round outside the run'
        if own_round is not None and abs(int(round_k) - int(own_round)) > self.window:
            return f'round more than {self.window} from ours'
        return None


def swarm_gate(
    num_robots: int, rounds: int, default_id: str, warn: Callable[[str], Any]
) -> MessageGate:
    """Return a node's gate with the credentials it was started with (``gate.credentials``)."""
    credentials = SwarmCredentials.from_env(default_id)
    return MessageGate(credentials, range(num_robots), ROUND_WINDOW, warn, max_round=rounds)
