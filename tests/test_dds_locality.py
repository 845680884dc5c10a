"""
Where DDS traffic goes: the package's Fast DDS set-up keeps a swarm on this host.

The runner gives every node ``config/dds/fastdds_profiles.xml`` (shared memory, UDP on loopback
only). A swarm runs inside a network namespace of its own that has, beside ``lo``, one veth
interface with an address (the way a robot has a Wi-Fi card); its packet counters must stay at
zero. The same swarm under ``ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET`` (the other profile) does send
packets there, so the counter can see them. Also: stale shared-memory files of killed nodes are
removed, live ones kept.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
import re
import shutil
import subprocess
import sys
import time

from dinno_ros.core.swarm import shm
from dinno_ros.core.swarm.plan import dds_env, DDS_PROFILES, DDS_PROFILES_SUBNET
import pytest
from test_swarm_lidar import swarm_config

pytest.importorskip('rclpy')

NETNS_SETUP = """
set -e
ip link set lo up
sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
ip link add nic0 type veth peer name nic1
ip addr add 10.23.0.1/24 dev nic0
ip link set nic0 up
ip link set nic1 up
"""


def netns_unavailable() -> str | None:
    """Return why this machine cannot make a network namespace with a veth pair, or None."""
    if not (shutil.which('unshare') and shutil.which('ip')):
        return 'unshare or ip (iproute2) not installed'
    probe = subprocess.run(
        ['unshare', '-n', 'sh', '-c', 'ip link add a0 type veth peer name a1'],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        return f'cannot make a network namespace with a veth pair: {probe.stderr.strip()}'
    return None


def tx_packets(proc_net_dev: str) -> int:
    """Return the packets sent on nic0 in a /proc/net/dev listing."""
    line = next(x for x in proc_net_dev.splitlines() if x.strip().startswith('nic0:'))
    return int(line.split(':', 1)[1].split()[9])


def run_in_netns(script: str, env: dict, cwd: Path) -> tuple[int, str]:
    """Run a bash ``script`` in a new network namespace; its exit code and output."""
    done = subprocess.run(
        ['unshare', '-n', 'bash', '-c', script],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done.returncode, done.stdout + done.stderr


def run_swarm_in_netns(config: Path, env: dict, cwd: Path) -> tuple[int, str, int]:
    """Run the swarm of ``config`` in a network namespace: exit code, output, nic0 tx packets."""
    script = (
        NETNS_SETUP
        + 'set +e\n'
        + f'{sys.executable} -m dinno_ros.swarm {config} --timeout 240\n'
        + 'code=$?\n'
        + 'echo "== /proc/net/dev"; cat /proc/net/dev\n'
        + 'exit $code\n'
    )
    code, out = run_in_netns(script, env, cwd)
    return code, out, tx_packets(out.split('== /proc/net/dev', 1)[1])


@pytest.mark.dds
def test_a_swarm_sends_nothing_off_the_host_and_subnet_does(tmp_path, ros_env) -> None:
    reason = netns_unavailable()
    if reason:
        pytest.skip(reason)
    config = swarm_config(tmp_path, rounds=5, graph={'type': 'cycle'})
    code, out, sent = run_swarm_in_netns(config, ros_env, tmp_path)
    assert code == 0, out[-3000:]
    assert re.search(r'round 5\b', out), out[-3000:]
    assert sent == 0, f'{sent} packets left through nic0 under the localhost profile'

    subnet = {
        **ros_env,
        'ROS_AUTOMATIC_DISCOVERY_RANGE': 'SUBNET',
        'FASTDDS_DEFAULT_PROFILES_FILE': ros_env['FASTDDS_DEFAULT_PROFILES_FILE'].replace(
            DDS_PROFILES, DDS_PROFILES_SUBNET
        ),
    }
    code, out, sent = run_swarm_in_netns(config, subnet, tmp_path)
    assert code == 0, out[-3000:]
    assert sent > 0, 'SUBNET discovery sent nothing on nic0: the counter would miss a leak'


def test_each_discovery_range_gets_its_profile_and_users_keep_theirs() -> None:
    local = dds_env({'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST'})
    assert local['FASTDDS_DEFAULT_PROFILES_FILE'].endswith(DDS_PROFILES)
    assert local['RMW_FASTRTPS_USE_QOS_FROM_XML'] == '1'
    assert 'mmap_threshold' in local['GLIBC_TUNABLES']
    assert dds_env({})['FASTDDS_DEFAULT_PROFILES_FILE'] == local['FASTDDS_DEFAULT_PROFILES_FILE']
    subnet = dds_env({'ROS_AUTOMATIC_DISCOVERY_RANGE': 'SUBNET'})
    assert subnet['FASTDDS_DEFAULT_PROFILES_FILE'].endswith(DDS_PROFILES_SUBNET)
    for path in (local, subnet):
        assert Path(path['FASTDDS_DEFAULT_PROFILES_FILE']).is_file()
    assert local['OPENBLAS_NUM_THREADS'] == '1'
    own = dds_env(
        {
            'FASTDDS_DEFAULT_PROFILES_FILE': '/mine.xml',
            'GLIBC_TUNABLES': 'x',
            'OPENBLAS_NUM_THREADS': '4',
        }
    )
    assert own == {}


def test_stale_shared_memory_files_go_and_live_ones_stay(tmp_path) -> None:
    live, dead = 'fastdds_0123456789abcdef', 'fastdds_fedcba9876543210'
    files = [live, f'{live}_el', dead, f'{dead}_el']
    files += ['fastdds_port7411', 'fastdds_port7411_el', 'sem.fastdds_port7411_mutex']
    files += ['fastdds_port7413', 'fastdds_port7413_el', 'fastdds_port7413_sl', 'other_file']
    for name in files:
        (tmp_path / name).write_bytes(b'')
    old = time.time() - 3600
    for name in files:
        os.utime(tmp_path / name, (old, old))
    (tmp_path / 'fastdds_1111111111111111_el').write_bytes(b'')  # a participant starting now
    holders = [open(tmp_path / f'{live}_el', 'ab'), open(tmp_path / 'fastdds_port7413_sl', 'ab')]
    try:
        for handle in holders:  # what a running participant holds
            fcntl.flock(handle, fcntl.LOCK_SH)
        assert shm.remove_stale_segments(tmp_path) == 5
    finally:
        for handle in holders:
            handle.close()
    left = sorted(p.name for p in tmp_path.iterdir())
    kept = [live, f'{live}_el', 'other_file', 'fastdds_1111111111111111_el', *files[7:10]]
    assert left == sorted(kept)
