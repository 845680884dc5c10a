#!/usr/bin/env python3
"""
Batched over per-robot offline runner (issue 9): time per round of the same robots, side by side.

MNIST: 10 robots on the real digits in ../shared/data/mnist, hetero split, cycle graph, DiNNO
with bench/quality_mnist.py's settings (3 primal Adam steps of batch 64 per round). Lidar:
config/lidar.yaml offline with 7 robots (disk graph, DiNNO, batch 2048, 10 primal steps). Each
side gets its own robots, built alike (same base weights, minibatch generators and routes); both
run round 0 untimed (lazy kernel set-up), then their rounds alternate in chunks of ``--chunk``
rounds so that load from elsewhere on the machine hits both sides alike. Evaluation is left out
(it is the same code on both sides). Both sides run on one torch thread (``--threads``): the
per-robot runner cannot use more for its small kernels, and on a shared machine one thread each
keeps the comparison steady. The lidar problem is not batched (its scans feed a sliding window,
its loss checks its outputs): that side times the per-robot runner twice and says so. After the
MNIST runs, the two sides' parameters are compared (same numbers within float tolerance).

    .venv/bin/python bench/offline_speed.py [--rounds 60] [--lidar-rounds 6] [--chunk 5]

Last line: ``batched_speedup_mnist=<x> batched_speedup_lidar=<x>`` (per-robot seconds per round
over batched seconds per round).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path
import sys
import time
from typing import Any

from dinno_ros.core.learning import registry
from dinno_ros.core.learning.agent import RobotAgent
from dinno_ros.core.learning.batched import BatchedSwarm, make_swarm
from dinno_ros.core.learning.build import build_agents, build_problem
from dinno_ros.core.learning.experiment_config import load_experiment
from dinno_ros.core.learning.round import RoundGraph
from dinno_ros.core.learning.simulation import OfflineSwarm
from dinno_ros.core.threads import limit_threads
from dinno_ros.share import resolve_config
import networkx as nx
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import quality_mnist  # noqa: E402, I100  (the bench's MNIST world, a sibling script)


def mnist_swarms(args: argparse.Namespace) -> tuple[Any, Any]:
    """Return (per-robot, batched) swarms of the quality bench's MNIST DiNNO robots."""
    world = quality_mnist.parse_args(['--data-dir', str(args.data_dir), '--nodes', '10'])
    problem = quality_mnist.mnist_problem(world)
    config = quality_mnist.optimizer_configs(args.rounds + 1)['dinno']
    graph = RoundGraph(problem.num_nodes, fixed=nx.cycle_graph(problem.num_nodes))

    def agents() -> list[RobotAgent]:
        optimizers = [
            registry.build_optimizer(config, problem.local_problem(i))
            for i in range(problem.num_nodes)
        ]
        return [RobotAgent(i, opt.problem, opt) for i, opt in enumerate(optimizers)]

    return OfflineSwarm(agents(), graph), make_swarm(agents(), graph, runner='batched')


def lidar_swarms(args: argparse.Namespace) -> tuple[Any, Any]:
    """Return two swarms of config/lidar.yaml's robots (7), each side's runner chosen by auto."""
    config = load_experiment(resolve_config('lidar.yaml')).with_device('cpu')
    config = dataclasses.replace(config, graph=dataclasses.replace(config.graph, num_nodes=7))
    config = config.with_rounds(args.lidar_rounds + 1)
    key = next(iter(config.pairs))
    problem = build_problem(config, key, 'cpu')
    graph = RoundGraph.from_config(config.graph, config.num_nodes, config.seed)

    def swarm(runner: str) -> Any:
        torch.manual_seed(config.seed)
        return make_swarm(build_agents(config, key, problem), graph, runner=runner)

    return swarm('per_robot'), swarm('auto')


def interleaved(sides: tuple[Any, Any], rounds: int, chunk: int) -> tuple[float, float]:
    """Run both sides' rounds 1..rounds in alternating chunks; return their seconds per round."""
    for swarm in sides:
        swarm.run_round(0)  # lazy set-up of kernels and buffers: untimed, as in every runner
    seconds = [0.0, 0.0]
    for n, start in enumerate(range(1, rounds + 1, chunk)):
        stop = min(start + chunk, rounds + 1)
        for side in (0, 1) if n % 2 == 0 else (1, 0):  # who goes first alternates too
            t0 = time.perf_counter()
            for k in range(start, stop):
                sides[side].run_round(k)
            seconds[side] += time.perf_counter() - t0
    return seconds[0] / rounds, seconds[1] / rounds


def max_difference(sides: tuple[Any, Any]) -> float:
    """Return the largest parameter difference between the two sides' robots."""
    return max(
        float((a.params() - b.params()).abs().max())
        for a, b in zip(sides[0].agents, sides[1].agents)
    )


def report(name: str, sides: tuple[Any, Any], per_robot: float, batched: float) -> float:
    """Print one problem's figures; return its speedup."""
    kind = 'batched' if isinstance(sides[1], BatchedSwarm) else 'per-robot (not batched)'
    print(
        f'{name}: per-robot {1e3 * per_robot:.1f} ms per round, {kind} {1e3 * batched:.1f} ms '
        f'per round: {per_robot / batched:.2f}x'
    )
    return per_robot / batched


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument('--data-dir', type=Path, default=quality_mnist.DEFAULT_DATA)
    ap.add_argument('--rounds', type=int, default=60, help='MNIST rounds timed per side')
    ap.add_argument('--lidar-rounds', type=int, default=6, help='lidar rounds timed per side')
    ap.add_argument('--chunk', type=int, default=5, help='rounds per side before switching')
    ap.add_argument('--threads', type=int, default=1, help='torch threads of both sides')
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if not (args.data_dir / 't10k-images-idx3-ubyte.gz').is_file():
        print(f'no MNIST digits under {args.data_dir}', file=sys.stderr)
        return 2
    limit_threads(args.threads)
    print(f'{args.threads} torch thread(s) per side; rounds alternate in chunks of {args.chunk}')
    sides = mnist_swarms(args)
    mnist = report('MNIST 10 robots, DiNNO', sides, *interleaved(sides, args.rounds, args.chunk))
    diff = max_difference(sides)
    print(f'  largest parameter difference after {args.rounds + 1} rounds: {diff:.2e}')
    sides = lidar_swarms(args)
    lidar_chunk = max(1, min(args.chunk, args.lidar_rounds // 2))
    lidar = report(
        'lidar 7 robots, DiNNO', sides, *interleaved(sides, args.lidar_rounds, lidar_chunk)
    )
    print(f'batched_speedup_mnist={mnist:.2f} batched_speedup_lidar={lidar:.2f}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
