"""The round inbox: synchronous rounds over lossy links without stalling."""

from __future__ import annotations

import threading
import time

from dinno_ros.core.learning.inbox import MissTracker, RoundInbox
import torch


def vec(x: float) -> torch.Tensor:
    return torch.full((3,), x)


def test_complete_round_returns_at_once_with_all_vectors():
    inbox = RoundInbox(('params', 'tracker'))
    inbox.put(1, 0, 'params', vec(1), degree=2)
    inbox.put(1, 0, 'tracker', vec(-1), degree=2)
    inbox.put(2, 0, 'params', vec(2), degree=1)
    inbox.put(2, 0, 'tracker', vec(-2), degree=1)
    t0 = time.monotonic()
    result = inbox.wait_round(0, [1, 2], timeout=5.0)
    assert time.monotonic() - t0 < 1.0
    assert result.late == [] and set(result.messages) == {1, 2}
    assert result.messages[1].degree == 2 and torch.equal(
        result.messages[2].vectors['tracker'], vec(-2)
    )


def test_half_a_message_is_not_a_message():
    inbox = RoundInbox(('params', 'tracker'))
    inbox.put(1, 0, 'params', vec(1), degree=1)  # the tracker never comes
    result = inbox.wait_round(0, [1], timeout=0.2)
    assert result.late == [1] and result.messages == {}


def test_late_neighbour_falls_back_to_its_last_message_after_the_timeout():
    inbox = RoundInbox(('params',))
    inbox.put(1, 3, 'params', vec(3), degree=1)
    t0 = time.monotonic()
    result = inbox.wait_round(4, [1], timeout=0.3)
    assert 0.25 < time.monotonic() - t0 < 2.0
    assert result.late == [1] and result.stale == {1: 3}
    assert torch.equal(result.messages[1].vectors['params'], vec(3))


def test_a_message_arriving_while_waiting_wakes_the_waiter():
    inbox = RoundInbox(('params',))
    threading.Timer(0.2, lambda: inbox.put(1, 0, 'params', vec(5), degree=1)).start()
    t0 = time.monotonic()
    result = inbox.wait_round(0, [1], timeout=10.0)
    assert time.monotonic() - t0 < 5.0 and result.late == []


def test_future_rounds_are_kept_and_old_ones_pruned():
    inbox = RoundInbox(('params',), keep_rounds=2)
    for k in range(6):
        inbox.put(1, k, 'params', vec(k), degree=1)
    assert inbox.has_round(1, 5) and inbox.has_round(1, 3) and not inbox.has_round(1, 1)
    assert inbox.latest_round(1) == 5


def test_close_wakes_waiters():
    inbox = RoundInbox(('params',))
    threading.Timer(0.1, inbox.close).start()
    t0 = time.monotonic()
    inbox.wait_round(0, [1], timeout=30.0)
    assert time.monotonic() - t0 < 5.0


def test_miss_tracker_stops_waiting_after_the_limit_and_revives():
    misses = MissTracker(lost_after_rounds=2)
    assert misses.record(on_time=[1], late=[2]) == []
    assert misses.record(on_time=[1], late=[2]) == [2]
    assert misses.split([1, 2]) == ([1], [2])
    misses.revive(2)
    assert misses.split([1, 2]) == ([1, 2], [])


def test_a_late_sender_ahead_of_us_stands_in_with_its_newest_earlier_round():
    inbox = RoundInbox(('params',))
    inbox.put(1, 2, 'params', vec(2), degree=1)
    inbox.put(1, 4, 'params', vec(4), degree=1)  # round 3 never came; round 4 already did
    result = inbox.wait_round(3, [1], timeout=0.0)
    assert result.late == [1] and result.stale == {1: 2}
    assert torch.equal(result.messages[1].vectors['params'], vec(2))


def test_a_held_back_message_misses_its_round_and_arrives_after_it():
    inbox = RoundInbox(('params',), late=[(1, 3)])
    inbox.put(1, 2, 'params', vec(2), degree=1)
    inbox.put(1, 3, 'params', vec(3), degree=1)  # late: held until round 3 is over
    result = inbox.wait_round(3, [1], timeout=0.0)
    assert result.late == [1] and result.stale == {1: 2}
    assert inbox.has_round(1, 3) and inbox.latest_round(1) == 3
    assert inbox.wait_round(4, [1], timeout=0.0).stale == {1: 3}


def test_a_held_back_message_ends_the_wait_as_its_arrival_would():
    inbox = RoundInbox(('params',), late=[(1, 3)])
    threading.Timer(0.2, lambda: inbox.put(1, 3, 'params', vec(3), degree=1)).start()
    t0 = time.monotonic()
    result = inbox.wait_round(3, [1], timeout=30.0)
    assert time.monotonic() - t0 < 5.0 and result.late == [1] and result.messages == {}
