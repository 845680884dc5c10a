"""
A real swarm: robot and monitor processes started by the runner.

They talk over DDS on this host.
"""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import CONFIGS
import pytest

pytestmark = pytest.mark.dds  # robot and monitor processes over DDS

CONSENSUS = re.compile(r'\[monitor\].*round (\d+): consensus ([0-9.e+-]+) - ([0-9.e+-]+)')


def run_swarm(
    args: list[str], env: dict, cwd, timeout: float = 300
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, '-m', 'dinno_ros.swarm', *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def consensus_by_round(output: str) -> dict[int, float]:
    return {int(m[1]): float(m[3]) for m in CONSENSUS.finditer(output)}


def test_three_robots_average_to_consensus(tmp_path, ros_env):
    """
    Robots start from different weights and (almost) only average.

    The consensus error must collapse.
    """
    proc = run_swarm([str(CONFIGS / 'tiny_swarm.yaml'), '--timeout', '240'], ros_env, tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    rounds = consensus_by_round(out)
    assert sorted(rounds) == list(range(13)), out[-3000:]  # round 0 (initial) .. 12
    assert rounds[0] > 1e-3
    assert rounds[12] < 1e-3 * rounds[0], rounds
    for i in range(3):
        assert f'[robot_{i}/robot]' in out and 'finished 12 rounds' in out
    assert 'all 4 nodes exited 0' in out
