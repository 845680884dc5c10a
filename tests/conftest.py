"""Shared test set-up: DDS stays on this host, on a domain id of each test's own."""

from __future__ import annotations

import itertools
import os
from pathlib import Path
import random

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / 'shared' / 'data'
CONFIGS = Path(__file__).resolve().parent / 'configs'

# Anything that starts rclpy in the test process itself stays on this host too.
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
_DOMAINS = itertools.count(random.SystemRandom().randrange(0, 100))


def next_domain_id() -> int:
    """A domain id for one test (1..200), different from its neighbours in the same run."""
    return 1 + (os.getpid() % 50 + next(_DOMAINS) * 7) % 200


@pytest.fixture
def ros_env() -> dict[str, str]:
    """The environment for node processes: localhost discovery and a domain of this test's own."""
    env = dict(os.environ)
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    env['ROS_DOMAIN_ID'] = str(next_domain_id())
    env['PYTHONUNBUFFERED'] = '1'
    return env


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f'shared data absent: {SHARED_DATA}')
    return SHARED_DATA
