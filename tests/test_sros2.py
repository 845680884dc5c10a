"""
The swarm under DDS Security (SROS2): the stronger option where a ROS install offers it.

One enclave for the whole swarm (``ROS_SECURITY_ENCLAVE_OVERRIDE``), security enforced: the run
must complete and equal the offline runner's, and a participant without the swarm's keys must not
see its topics. Skipped where SROS2 is absent: the PyPI ROS 2 wheels this project installs ship
neither ``sros2`` nor Fast DDS's security plugins (the README says how to run it on a ROS install).
"""

from __future__ import annotations

import subprocess
import time

from conftest import ros2_cli
import pytest
from test_swarm_faults import assert_equals_offline
from test_swarm_lidar import live_topics, start_swarm, swarm_config

pytestmark = pytest.mark.dds

ENCLAVE = '/dinno_ros/swarm'


def secure_env(ros_env: dict, keystore) -> dict:
    return {
        **ros_env,
        'ROS_SECURITY_KEYSTORE': str(keystore),
        'ROS_SECURITY_ENABLE': 'true',
        'ROS_SECURITY_STRATEGY': 'Enforce',
        'ROS_SECURITY_ENCLAVE_OVERRIDE': ENCLAVE,
    }


def test_the_swarm_runs_with_dds_security_enforced(tmp_path, ros_env) -> None:
    pytest.importorskip('sros2', reason='SROS2 is not installed (the PyPI ROS 2 wheels lack it)')
    keystore = tmp_path / 'keystore'
    ros2 = ros2_cli()
    for args in (['create_keystore', str(keystore)], ['create_enclave', str(keystore), ENCLAVE]):
        subprocess.run([*ros2, 'security', *args], env=ros_env, check=True, timeout=120)
    config = swarm_config(tmp_path, rounds=10, graph={'type': 'cycle'})
    proc, lines = start_swarm(config, secure_env(ros_env, keystore), tmp_path)
    stranger = live_topics(int(ros_env['ROS_DOMAIN_ID']), lambda: proc.poll() is not None, 300)
    proc.wait(timeout=30)
    time.sleep(0.2)
    out = ''.join(lines)
    assert proc.returncode == 0, out[-4000:]
    assert not any(topic.startswith('/robot_') for topic in stranger), sorted(stranger)
    assert_equals_offline(tmp_path, config)
