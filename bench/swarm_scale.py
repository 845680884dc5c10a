#!/usr/bin/env python3
"""
How the swarm scales on one machine: memory, startup and round time for 4 to 32 robots.

For each size, the ROS swarm of ``config/lidar.yaml`` (pip-only runner, real DDS on this host,
``--per-process`` robots per process, by default as many as make one process per CPU core) and then
the offline runner on the same config: resident memory per robot (the largest total resident set of
the runner's node processes seen while it runs, the monitor included, divided by the number of
robots; shared pages count once per process, so this overstates), startup (runner start to the
monitor's round-0 report), the slowest robot's time per round after the first, and that over the
offline runner's (2 torch threads). Last line:
``robots=32 rss_mb_per_robot=<v> startup_s=<v> round_ratio_vs_offline=<r>``.

    .venv/bin/python bench/swarm_scale.py [--sizes 4,8,16,32] [--rounds 20] [--per-process N]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
import random
import re
import subprocess
import sys
import tempfile
import threading
import time

import psutil
from swarm_overhead import bench_config, offline_round_ms
import yaml

ROUND0 = re.compile(r'\[monitor\].*round 0: consensus')
PER_ROUND = re.compile(  # rclpy's logger name: robots sharing a process log under theirs too
    r'\[robot_(\d+)\.robot\]: finished (\d+) rounds .* ([0-9.]+) ms per round after the first'
)


def scaled_config(config: str, robots: int, rounds: int, per_process: int, out: Path) -> Path:
    """Write ``config`` for ``robots`` robots, ``per_process`` to a process, no evaluation."""
    path = bench_config(config, rounds, robots, out)
    data = yaml.safe_load(path.read_text())
    data['swarm']['robots_per_process'] = per_process
    data['swarm']['startup_timeout'] = 300.0
    data['swarm']['publish_scans'] = False  # nobody watches: RViz topics are not the subject
    data['experiment']['graph']['num_nodes'] = robots
    path.write_text(yaml.safe_dump(data))
    return path


def tree_rss_mb(root: psutil.Process) -> float:
    """Return the resident memory of ``root``'s descendants in MB (the runner itself left out)."""
    total = 0
    for child in root.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:
            pass
    return total / 2**20


def ros_run(config: Path, rounds: int) -> tuple[float, float, float]:
    """Return (peak resident MB of the nodes, startup s, slowest robot's ms per round)."""
    env = dict(
        os.environ,
        ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST',
        ROS_DOMAIN_ID=str(random.SystemRandom().randint(101, 200)),
    )
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, '-m', 'dinno_ros.swarm', str(config), '--timeout', '1800'],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    started: list[float] = []

    def read() -> None:
        for line in iter(proc.stdout.readline, ''):
            lines.append(line)
            if not started and ROUND0.search(line):
                started.append(time.monotonic() - t0)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    root, peak = psutil.Process(proc.pid), 0.0
    while proc.poll() is None:
        peak = max(peak, tree_rss_mb(root))
        time.sleep(1.0)
    reader.join(timeout=10)
    out = ''.join(lines)
    if proc.returncode != 0:
        sys.stderr.write(out[-3000:])
        raise SystemExit(f'the ROS swarm failed (exit {proc.returncode})')
    per_robot = [float(m[3]) for m in PER_ROUND.finditer(out) if int(m[2]) == rounds]
    return peak, started[0] if started else float('nan'), max(per_robot)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--config', default='lidar.yaml')
    parser.add_argument('--sizes', default='4,8,16,32')
    parser.add_argument('--rounds', type=int, default=20)
    parser.add_argument(
        '--per-process',
        type=int,
        default=0,
        help='swarm.robots_per_process (default 0: robots / CPU cores, one process per core)',
    )
    parser.add_argument('--offline-threads', type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(',')]
    cores = os.cpu_count() or 1
    print(
        f'{args.rounds} rounds of {args.config}, {cores} CPU cores; offline runner with '
        f'{args.offline_threads} torch threads'
    )
    row = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            per_process = args.per_process or -(-n // cores)
            config = scaled_config(
                args.config, n, args.rounds, per_process, Path(tmp) / f'scale_{n}.yaml'
            )
            rss, startup, ros_ms = ros_run(config, args.rounds)
            offline_ms = offline_round_ms(config, args.rounds, args.offline_threads)
            row = {
                'robots': n,
                'rss_mb_per_robot': rss / n,
                'startup_s': startup,
                'round_ratio_vs_offline': ros_ms / offline_ms,
            }
            print(
                f'{n:>3} robots, {per_process} per process: {rss:.0f} MB resident '
                f'({rss / n:.0f} MB per robot), startup {startup:.1f} s, ROS {ros_ms:.0f} ms per '
                f'round, offline {offline_ms:.0f} ms per round (ratio {ros_ms / offline_ms:.2f})',
                flush=True,
            )
    print(
        f'robots={row["robots"]} rss_mb_per_robot={row["rss_mb_per_robot"]:.0f} '
        f'startup_s={row["startup_s"]:.1f} '
        f'round_ratio_vs_offline={row["round_ratio_vs_offline"]:.2f}'
    )
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
