"""Two swarms started by dinno-swarm on one host never share a ROS domain id (issue 11, item 1)."""

from __future__ import annotations

import subprocess
import sys

from dinno_ros.core.swarm.domains import lease_domain
from dinno_ros.swarm import swarm_environment
import pytest


def test_leases_are_exclusive_and_end_with_their_process(tmp_path) -> None:
    first = lease_domain(range(1, 3), tmp_path)
    second = lease_domain(range(1, 3), tmp_path)
    assert {first.domain_id, second.domain_id} == {1, 2}
    with pytest.raises(RuntimeError, match='every ROS domain id in 1..2 is held'):
        lease_domain(range(1, 3), tmp_path)
    # another process sees the lock too, and gets the id once we let go
    probe = (
        'from pathlib import Path; from dinno_ros.core.swarm.domains import lease_domain;'
        f'print(lease_domain([{first.domain_id}], Path({str(tmp_path)!r})).domain_id)'
    )
    held = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True)
    assert held.returncode != 0 and 'is held by another swarm' in held.stderr
    first.release()
    free = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True)
    assert free.stdout.strip() == str(first.domain_id), free.stderr
    second.release()


def test_the_runner_uses_its_lease_unless_the_user_chose(tmp_path) -> None:
    lease = lease_domain(range(7, 8), tmp_path)
    assert swarm_environment({}, lease)['ROS_DOMAIN_ID'] == '7'
    assert swarm_environment({'ROS_DOMAIN_ID': '42'}, lease)['ROS_DOMAIN_ID'] == '42'
    lease.release()
