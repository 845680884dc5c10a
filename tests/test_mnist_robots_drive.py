"""
config/mnist.yaml: MNIST shards instead of lidar.

But the robots still drive their routes and scan.
"""

from __future__ import annotations

from conftest import SHARED_DATA
from dinno_ros.core.learning.build import build_agent, build_problem
from dinno_ros.core.swarm.spec import load_swarm
import numpy as np
import pytest

pytestmark = pytest.mark.skipif(
    not (SHARED_DATA / 'mnist').is_dir(), reason='no shared MNIST data'
)


def test_mnist_robots_drive_and_scan():
    spec = load_swarm('mnist.yaml', rounds=5)
    assert spec.experiment.problem == 'mnist'
    problem = build_problem(spec.experiment, spec.pair_key)
    agent = build_agent(spec.experiment, spec.pair_key, problem, robot_id=1)
    first = agent.begin_round(0)
    later = agent.begin_round(20)
    assert first is not None and later is not None  # a scan each round
    assert (
        np.linalg.norm(later.pose[:2] - first.pose[:2]) > 1.0
    )  # it moved (1 m/s, 0.5 s per round)
    assert first.hit.any()
    batch = agent.problem.next_batch()  # and it learns digits, not the map
    assert batch[0].shape[1:] == (1, 28, 28)
