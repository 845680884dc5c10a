"""The monitor's bookkeeping in one process: when a robot is lost, when a run is complete."""

from __future__ import annotations

from types import SimpleNamespace

from conftest import CONFIGS
from dinno_ros.core.swarm import monitor as monitor_module
from dinno_ros.core.swarm.monitor import SwarmMonitor
from dinno_ros.core.swarm.spec import load_swarm
import numpy as np
import pytest
import torch


@pytest.fixture(scope='module')
def spec():
    return load_swarm(CONFIGS / 'tiny_swarm.yaml', rounds=3)


def feed(monitor: SwarmMonitor, robot: int, tag: int, finished: bool = False) -> None:
    """One robot's state and params vector of round ``tag``, as its node sends them."""
    vector = torch.zeros(monitor.layout_size)
    monitor.put_state(robot, tag, np.zeros(3), forward_passes=tag, finished=False)
    monitor.put_vector(robot, tag, vector)
    if finished:
        monitor.put_state(robot, tag, np.zeros(3), forward_passes=tag, finished=True)


@pytest.fixture
def monitor(spec) -> SwarmMonitor:
    m = SwarmMonitor(spec)
    m.layout_size = sum(p.numel() for p in m.problem.base_model().parameters())
    return m


def test_silence_counts_only_beyond_what_a_round_may_wait(monitor, spec):
    section = spec.section
    for robot in range(3):
        feed(monitor, robot, 0)
    t0 = max(monitor.last_seen.values())
    # before its round 0 is done a robot may wait startup_timeout for its neighbours
    assert monitor.update_lost(t0 + section.startup_timeout + section.monitor.lost_after - 1) == []
    for robot in range(3):
        feed(monitor, robot, 1)
    t1 = max(monitor.last_seen.values())
    limit = section.round_timeout + section.monitor.lost_after
    assert monitor.update_lost(t1 + limit - 0.5) == []
    assert monitor.update_lost(t1 + limit + 0.5) == [0, 1, 2]
    feed(monitor, 1, 2)
    assert monitor.lost == {0, 2}, 'a robot that sends again is back'


def test_a_round_waits_for_the_states_of_its_vectors(monitor):
    for robot in range(3):
        monitor.put_vector(robot, 0, torch.zeros(monitor.layout_size))
    assert not monitor.ready(), 'tag 0 reported before the robots said their forward passes'
    for robot in range(3):
        monitor.put_state(robot, 0, np.zeros(3), forward_passes=0, finished=False)
    assert monitor.ready()


def test_a_complete_run_and_one_that_lost_a_robot(monitor, spec):
    for tag in range(spec.rounds + 1):
        for robot in range(3):
            if robot == 2 and tag > 1:
                continue  # robot 2 dies after round 1
            feed(monitor, robot, tag, finished=tag == spec.rounds)
        monitor.process()
    assert not monitor.done(), 'robot 2 is neither finished nor lost yet'
    monitor.update_lost(max(monitor.last_seen.values()) + 1e6)
    for _ in monitor.process():
        pass
    assert monitor.done()
    assert monitor.rounds_completed() == {0: 3, 1: 3, 2: 1}
    shortfall = monitor.shortfall()
    assert len(shortfall) == 1 and shortfall[0].startswith('robot_2 stopped after 1 of 3 rounds (')
    results = monitor.results()
    assert not results['complete'] and results['rounds_reported'] == 3


def test_a_vector_that_never_came_is_asked_for_before_the_round_goes_on(monitor):
    for robot in range(3):
        feed(monitor, robot, 0)
    assert [r.round_k for r in monitor.process()] == [0]
    for robot in (0, 2):
        feed(monitor, robot, 1)
    feed(monitor, 1, 2)  # robot 1's tag-1 vector was pushed out of the monitor's queue
    monitor.put_state(1, 1, np.zeros(3), forward_passes=1, finished=False)
    assert monitor.wanted() == {1: [1]}
    assert monitor.process() == [], 'the round went on without asking robot 1 again'
    feed(monitor, 1, 1)  # sent again
    assert monitor.wanted() == {}
    (report,) = monitor.process()
    assert report.robots == [0, 1, 2]


def test_a_vector_asked_for_in_vain_is_given_up_after_the_grace(monitor):
    for robot in range(3):
        feed(monitor, robot, 0)
    monitor.process()
    for robot in (0, 2):
        feed(monitor, robot, 1)
    feed(monitor, 1, 2)
    monitor.put_state(1, 1, np.zeros(3), forward_passes=1, finished=False)
    assert monitor.process() == []
    monitor.resend_grace = 0.0
    (report,) = monitor.process()
    assert report.robots == [0, 2]


def test_a_run_is_not_over_while_a_vector_is_asked_for(monitor, spec):
    for tag in range(spec.rounds + 1):
        for robot in range(3):
            if (robot, tag) != (1, 2):  # robot 1's tag-2 vector never came
                feed(monitor, robot, tag, finished=tag == spec.rounds)
    monitor.process()
    assert monitor.next_round == 2 and monitor.wanted() == {1: [2]}
    assert not monitor.done(), 'the monitor gave up on the rest of the run'
    monitor.resend_grace = 0.0
    assert [r.round_k for r in monitor.process()] == [2, 3]
    assert monitor.done()


def test_a_run_of_missing_tags_costs_one_grace_not_one_each(monkeypatch):
    """A robot restarted at round 9 while the monitor reports tag 1: tags 1-8 wait one grace."""
    clock = [0.0]
    monkeypatch.setattr(monitor_module, 'time', SimpleNamespace(monotonic=lambda: clock[0]))
    monitor = SwarmMonitor(load_swarm(CONFIGS / 'tiny_swarm.yaml', rounds=12))
    monitor.layout_size = sum(p.numel() for p in monitor.problem.base_model().parameters())
    for tag in range(13):
        for robot in range(3):
            if robot != 2 or tag == 0 or tag >= 9:  # robot 2's tags 1-8 never come
                feed(monitor, robot, tag)
    assert [r.round_k for r in monitor.process()] == [0], 'tag 1 went on without asking robot 2'
    clock[0] += monitor.resend_grace  # one grace: robot 2's tag 1, and with it the tags after it
    reports = monitor.process()
    assert [r.round_k for r in reports] == list(range(1, 13))
    assert [r.robots for r in reports] == [[0, 1]] * 8 + [[0, 1, 2]] * 4
