"""
One swarm over two hosts: the README's multi-host recipe, run between two network namespaces.

The test builds its own sandbox: a network namespace for host A (the monitor and robots 0 and 1)
and one for host B (robot 2), joined by a veth link (10.9.0.1 <-> 10.9.0.2), and tears it down
with its processes. Both hosts run the runner with the same config, ``--robots`` subsets,
``ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET`` and the same exported swarm id and key. Namespaces share
this machine's /dev/shm, which real hosts do not, so the hosts here speak UDP only (the subnet
profile without shared memory). Every round completes and the results equal the offline runner's
(as they do for a swarm on one host, ``tests/test_swarm_lidar.py``).
"""

from __future__ import annotations

from pathlib import Path
import secrets
import sys

from dinno_ros.core.learning.experiment import run_pair
from dinno_ros.core.swarm.plan import DDS_PROFILES, DDS_PROFILES_SUBNET
from dinno_ros.core.swarm.spec import load_swarm
import pytest
from test_dds_locality import netns_unavailable, run_in_netns, tx_packets
from test_swarm_lidar import CONSENSUS, results_file, swarm_config
import torch

pytest.importorskip('rclpy')
pytestmark = pytest.mark.dds

HOST_B = """
set -e
while ! ip link show nicB >/dev/null 2>&1; do sleep 0.05; done
ip link set lo up
ip addr add 10.9.0.2/24 dev nicB
ip link set nicB up
set +e
{python} -m dinno_ros.swarm {config} --robots 2 --no-monitor --timeout 240
code=$?
echo "== /proc/net/dev"; sed 's/nicB:/nic0:/' /proc/net/dev
exit $code
"""

HOST_A = """
set -e
ip link set lo up
sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
unshare -n bash -c "$HOST_B_SCRIPT" > {log_b} 2>&1 &
host_b=$!
while [ "$(readlink /proc/$host_b/ns/net)" = "$(readlink /proc/self/ns/net)" ]; do sleep 0.05; done
ip link add nicA type veth peer name nicB netns $host_b
ip addr add 10.9.0.1/24 dev nicA
ip link set nicA up
set +e
{python} -m dinno_ros.swarm {config} --robots 0,1 --timeout 240
code=$?
wait $host_b
code_b=$?
echo "host B exit $code_b"
exit $(( code | code_b ))
"""


def udp_only_profile(env: dict, folder: Path) -> Path:
    """Write the subnet profile without shared memory (separate hosts share no memory)."""
    subnet = Path(env['FASTDDS_DEFAULT_PROFILES_FILE'].replace(DDS_PROFILES, DDS_PROFILES_SUBNET))
    text = subnet.read_text()
    shm = '<transport_id>dinno_ros_shm</transport_id>'
    head, users = text.split('<userTransports>')
    users = users.replace(shm, '', 1)
    out = folder / 'udp_only.xml'
    out.write_text(head + '<userTransports>' + users)
    return out


def test_a_swarm_over_two_hosts_completes_and_equals_the_offline_run(tmp_path, ros_env) -> None:
    reason = netns_unavailable()
    if reason:
        pytest.skip(reason)
    config = swarm_config(tmp_path, rounds=10, graph={'type': 'cycle'})
    env = {
        **ros_env,
        'ROS_AUTOMATIC_DISCOVERY_RANGE': 'SUBNET',
        'FASTDDS_DEFAULT_PROFILES_FILE': str(udp_only_profile(ros_env, tmp_path)),
        'DINNO_SWARM_ID': f'two-hosts-{secrets.token_hex(4)}',
        'DINNO_SWARM_KEY': secrets.token_hex(32),
    }
    env['HOST_B_SCRIPT'] = HOST_B.format(python=sys.executable, config=config)
    log_b = tmp_path / 'host_b.log'
    script = HOST_A.format(python=sys.executable, config=config, log_b=log_b)
    code, out = run_in_netns(script, env, tmp_path)
    b_out = log_b.read_text() if log_b.exists() else ''
    assert code == 0, out[-3000:] + '\n--- host B ---\n' + b_out[-3000:]
    assert out.count('finished 10 rounds') == 2 and b_out.count('finished 10 rounds') == 1
    assert tx_packets(b_out.split('== /proc/net/dev', 1)[1]) > 0  # B spoke over the link
    consensus = {int(m[1]) for m in CONSENSUS.finditer(out)}
    assert consensus == set(range(11)), out[-3000:]

    ros = torch.load(results_file(tmp_path, 'dinno'), weights_only=True)
    spec = load_swarm(config)
    torch.set_num_threads(1)
    offline, _ = run_pair(spec.experiment, spec.pair_key, 'cpu', progress=False)
    assert ros['evaluation_rounds'] == offline['evaluation_rounds'] == [0, 5, 10]
    assert ros['lost_robots'] == []
    for a, b in zip(ros['validation_loss'], offline['validation_loss']):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6), (a, b)
    for a, b in zip(ros['consensus_error'], offline['consensus_error']):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6), (a, b)
    assert ros['forward_pass_count'] == offline['forward_pass_count']
