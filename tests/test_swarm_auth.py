"""
Swarm identity, message authentication and the receiving gate (issue 11, items 1 - 3).

The credentials' MAC, the gate's reasons and counts, rate-limited warnings, the value bound.
"""

from __future__ import annotations

from dinno_ros.core.swarm.auth import (
    canonical_header,
    ID_ENV,
    KEY_ENV,
    MessageGate,
    RateLimitedLog,
    SwarmCredentials,
)
from dinno_ros.core.wire import check_bound, WireError
import pytest
import torch

A = SwarmCredentials('a-0-1234', bytes(range(32)))


def header(**fields) -> bytes:
    return canonical_header('weights', 'a-0-1234', **{'sender': 1, 'round': 3, **fields})


def test_mac_covers_header_and_payload() -> None:
    mac = A.sign(header(), b'payload')
    assert len(mac) == 32 and A.verify(header(), b'payload', mac)
    assert not A.verify(header(), b'payloaD', mac)
    assert not A.verify(header(round=4), b'payload', mac)
    other = SwarmCredentials('a-0-1234', bytes(32))
    assert not other.verify(header(), b'payload', mac)
    assert not A.verify(header(), b'payload', b'')


def test_new_credentials_are_fresh_unless_the_environment_gives_them() -> None:
    one, two = SwarmCredentials.new('lidar', 3, {}), SwarmCredentials.new('lidar', 3, {})
    assert one.swarm_id.startswith('lidar-3-') and one.swarm_id != two.swarm_id
    assert one.key != two.key and len(one.key) == 32
    shared = SwarmCredentials.new('lidar', 3, one.env())  # another host of the same swarm
    assert shared == one
    assert SwarmCredentials.from_env('x-0', {}) == SwarmCredentials('x-0', None)
    with pytest.raises(ValueError, match=KEY_ENV):
        SwarmCredentials.from_env('x-0', {ID_ENV: 's', KEY_ENV: 'nothex'})


def gate(warnings: list[str], credentials: SwarmCredentials = A) -> MessageGate:
    return MessageGate(credentials, range(3), window=4, warn=warnings.append, max_round=100)


@pytest.mark.parametrize(
    'change, reason',
    [
        ({'swarm_id': 'b-0-9999'}, 'another swarm'),
        ({'sender': 999, 'topic_sender': None}, 'sender not in the swarm'),
        ({'sender': 2}, 'sender does not match its topic'),
        ({'round_k': 2**32 - 1}, 'round outside the run'),
        ({'round_k': 50}, 'round more than 4 from ours'),
        ({'mac': b''}, 'bad or missing MAC'),
        ({'payload': b'forged'}, 'bad or missing MAC'),
    ],
)
def test_gate_drops_and_counts(change: dict, reason: str) -> None:
    args = {
        'swarm_id': A.swarm_id,
        'sender': 1,
        'topic_sender': 1,
        'round_k': 3,
        'own_round': 3,
        'header': header(),
        'payload': b'payload',
        'mac': A.sign(header(), b'payload'),
    }
    warnings: list[str] = []
    g = gate(warnings)
    assert g.admit('weights', **args) is None
    assert g.admit('weights', **{**args, **change}) == reason
    assert g.dropped == {reason: 1} and reason in warnings[-1]


def test_without_a_key_unsigned_messages_of_the_swarm_pass_and_it_says_so() -> None:
    warnings: list[str] = []
    g = gate(warnings, SwarmCredentials('a-0-1234'))
    assert 'no DINNO_SWARM_KEY' in warnings[0]
    assert g.admit('state', 'a-0-1234', 1, 1, 3, 3, b'h', b'', b'') is None
    assert g.admit('state', 'b', 1, 1, 3, 3, b'h', b'', b'') == 'another swarm'


def test_warnings_are_rate_limited_with_counts() -> None:
    lines: list[str] = []
    now = [0.0]
    log = RateLimitedLog(lines.append, period=5.0, clock=lambda: now[0])
    for _ in range(10_000):
        log.warn('nan', 'NaN from robot 1')
    now[0] = 6.0
    log.warn('nan', 'NaN from robot 1')
    log.warn('other', 'something else')
    assert lines == [
        'NaN from robot 1',
        'NaN from robot 1 (9999 more like it since the last line)',
        'something else',
    ]


def test_values_beyond_the_bound_are_wire_errors() -> None:
    assert check_bound(torch.tensor([1.0, -2.0]), 10.0) is not None
    with pytest.raises(WireError, match='magnitude 1e\\+30'):
        check_bound(torch.tensor([1.0, 1e30]), 1e6)
