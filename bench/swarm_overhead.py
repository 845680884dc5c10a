#!/usr/bin/env python3
"""
What ROS costs: time per round of the same lidar config.

Run as the ROS swarm and in the offline runner.

The ROS swarm is started by the pip-only runner (one process per robot plus the monitor, real DDS
on this host); its round time is the slowest robot's mean time per round after the first (round 0
includes waiting for the swarm to come up). The offline time is the mean round of
``simulation.run_rounds`` over the same robots, same seed, in one process. Evaluation is left out
of both (the monitor evaluates only at the end). Last line:
``ros_round_ms=<r> offline_round_ms=<o> ratio=<r/o>``, medians of ``--repeats`` ROS and offline
runs that alternate, so that whatever else loads the machine hits both sides alike.

    .venv/bin/python bench/swarm_overhead.py [--config lidar.yaml] [--rounds 60] [--num-robots 4]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time

from dinno_ros.core.learning.build import build_agents, build_problem
from dinno_ros.core.learning.round import RoundGraph
from dinno_ros.core.learning.simulation import OfflineSwarm, run_rounds
from dinno_ros.core.swarm.spec import load_swarm
from dinno_ros.share import resolve_config
import torch
import yaml

PER_ROUND = re.compile(
    r'\[robot_(\d+)/robot\].*finished (\d+) rounds .* ([0-9.]+) ms per round after the first'
)


def bench_config(config: str, rounds: int, num_robots: int, out: Path) -> Path:
    """Write the config with evaluation only at the end and nothing written."""
    path = resolve_config(config)
    data = yaml.safe_load(path.read_text())
    swarm = data.setdefault('swarm', {})
    swarm.update(
        rounds=rounds,
        num_robots=num_robots,
        pair=swarm.get('pair') or next(iter(data['problem_configs'])),
    )
    swarm.setdefault('monitor', {}).update(evaluate_frequency=rounds, writeout=False)
    exp = data['experiment']
    if 'map' in exp and 'path' in exp['map']:  # keep the map resolvable from the temporary copy
        exp['map']['path'] = str(load_swarm(path).experiment.problem_config.map.path)
    out.write_text(yaml.safe_dump(data))
    return out


def ros_round_ms(config: Path, rounds: int) -> float:
    env = dict(
        os.environ,
        ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST',
        ROS_DOMAIN_ID=os.environ.get(
            'ROS_DOMAIN_ID', str(random.SystemRandom().randint(101, 200))
        ),
    )
    proc = subprocess.run(
        [sys.executable, '-m', 'dinno_ros.swarm', str(config), '--timeout', '1200'],
        env=env,
        capture_output=True,
        text=True,
    )
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        sys.stderr.write(out[-3000:])
        raise SystemExit(f'the ROS swarm failed (exit {proc.returncode})')
    per_robot = {int(m[1]): float(m[3]) for m in PER_ROUND.finditer(out) if int(m[2]) == rounds}
    return max(per_robot.values())


def offline_round_ms(config: Path, rounds: int, threads: int) -> float:
    spec = load_swarm(config)
    torch.set_num_threads(threads)
    exp = spec.experiment
    agents = build_agents(exp, spec.pair_key, build_problem(exp, spec.pair_key, 'cpu'))
    swarm = OfflineSwarm(agents, RoundGraph.from_config(exp.graph, exp.num_nodes, exp.seed))
    run_rounds(swarm, 1)  # round 0, as in the ROS figure
    t0 = time.perf_counter()
    run_rounds(swarm, rounds - 1, start=1)
    return 1e3 * (time.perf_counter() - t0) / (rounds - 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--config', default='lidar.yaml')
    parser.add_argument('--rounds', type=int, default=60)
    parser.add_argument('--num-robots', type=int, default=4)
    parser.add_argument(
        '--offline-threads',
        type=int,
        default=os.cpu_count() or 1,
        help='torch threads of the offline runner (default: all cores, its best case)',
    )
    parser.add_argument(
        '--repeats',
        type=int,
        default=3,
        help='ROS and offline runs, alternating, so that load on the machine hits both alike',
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = bench_config(
            args.config, args.rounds, args.num_robots, Path(tmp) / 'bench_swarm.yaml'
        )
        spec = load_swarm(config)
        print(
            f'{spec.num_robots} robots, {spec.rounds} rounds of {spec.pair.alg_name}, '
            f'graph {spec.experiment.graph.type}, {os.cpu_count()} CPU cores'
        )
        runs = {'ros': [], 'offline': []}
        for i in range(args.repeats):
            runs['ros'].append(ros_round_ms(config, args.rounds))
            runs['offline'].append(offline_round_ms(config, args.rounds, args.offline_threads))
            ros, offline = runs['ros'][-1], runs['offline'][-1]
            print(f'  run {i + 1}: ROS {ros:.1f} ms, offline {offline:.1f} ms per round')
        ros, offline = (statistics.median(runs[k]) for k in ('ros', 'offline'))
    print(
        f'ROS swarm: {ros:.1f} ms per round (slowest robot); '
        f'offline runner: {offline:.1f} ms per round '
        f'({args.offline_threads} torch threads; medians of {args.repeats} alternating runs)'
    )
    print(f'ros_round_ms={ros:.1f} offline_round_ms={offline:.1f} ratio={ros / offline:.2f}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
