#!/usr/bin/env python3
"""
Lidar mapping quality: DiNNO's validation loss against centralised training.

The centralised model trains on the union of the robots' data.

Seven robots drive their own A* routes through the DiNNO paper's floorplan (CubiCasa5k plan 32, the
wall mask in ../shared/data/floorplans/dinno_32_walls.png; a generated office of the same size when
absent), scan with the paper's lidar (20 beams, 25 samples per beam, beam length 0.2) and learn the
map on a disk graph of their positions. DSGD and DSGT run on the same routes and base weights and
are reported. The centralised reference trains the same network from the same base weights on the
union of the robots' scans (one sliding window of 7 x the robots' window) with the same number of
samples per round as all DiNNO robots together (5 Adam steps of 7 x the robot batch, the same
learning-rate schedule), once with a fresh Adam each round (DiNNO's primal optimizer without the
consensus terms) and once with one persistent Adam; the lower final validation loss of the two is
the reference.

The paper's validation loss: the sum over validation batches (10,000 samples) of the batch-mean BCE
on 500 scans from random free poses (the paper's centralised figure: 2.34). Reduced from the paper
to fit a 2-core CPU: 4000 -> --rounds rounds, batch 12,500 -> --batch (DSGD/DSGT 20,000 -> 1.6 x
--batch).

    .venv/bin/python bench/quality_lidar.py [--rounds 600] [--batch 2000] [--out results/bench]

Last line: ``dinno_val=<v> central_val=<c> ratio=<v/c>``.
"""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path
import sys
import time

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dinno_ros.core.learning.build import build_problem  # noqa: E402, I100 (sys.path)
from dinno_ros.core.learning.experiment import run_experiment  # noqa: E402
from dinno_ros.core.learning.experiment_config import parse_experiment  # noqa: E402
from dinno_ros.core.learning.optimizers.schedules import lr_at  # noqa: E402
from dinno_ros.core.world.datasets import map_quality, occupancy_grid_truth, SeenMask  # noqa: E402

PLAN = ROOT.parent / 'shared' / 'data' / 'floorplans' / 'dinno_32_walls.png'
RESOLUTION = 0.015  # metres per pixel of the plan (CubiCasa5k plans: about 1-2 cm per pixel)
NUM_ROBOTS = 7


def experiment_dict(args: argparse.Namespace, map_section: dict) -> dict:
    metrics = [
        'forward_pass_count',
        'train_loss_moving_average',
        'validation_loss',
        'consensus_error',
        'mesh_grid_density',
        'current_epoch',
    ]
    common = {
        'val_batch_size': 10000,
        'evaluate_frequency': args.eval_every,
        'verbose_evals': True,
        'metrics': metrics,
        'metrics_config': {'tloss_decay': 0.2, 'mesh_only_at_end': True},
    }
    dsg_batch = int(round(1.6 * args.batch))
    return {
        'experiment': {
            'name': 'quality_lidar',
            'output_metadir': str(args.out),
            'writeout': True,
            'seed': args.seed,
            'device': 'cpu',
            'problem': 'density',
            'map': map_section,
            'model': {'shape': [2, 256, 64, 64, 64, 1], 'scale': 0.05},
            'loss': 'BCE',
            'lidar': {'num_beams': 20, 'beam_length': 0.2, 'beam_samps': 25},
            'routes': {
                'overlap': 'some',
                'waypoints_per_robot': 5,
                'speed': 0.5,
                'dt': 0.2,
                'robot_radius': 0.2,
            },
            'dataset': {'window': 800},
            'validation': {'num_scans': 500},
            'mesh_stride': 8,
            'graph': {'num_nodes': NUM_ROBOTS, 'type': 'disk', 'comm_radius': 1500 * RESOLUTION},
        },
        'problem_configs': {
            'dinno': {
                **common,
                'problem_name': 'dinno',
                'train_batch_size': args.batch,
                'optimizer_config': {
                    'alg_name': 'dinno',
                    'rho_init': 0.3,
                    'rho_scaling': 1.0004,
                    'outer_iterations': args.rounds,
                    'primal_iterations': args.primal_iterations,
                    'primal_optimizer': 'adam',
                    'persistant_primal_opt': False,
                    'primal_lr_start': args.lr_start,
                    'primal_lr_finish': args.lr_finish,
                    'lr_decay_type': 'log',
                },
            },
            'dsgt': {
                **common,
                'problem_name': 'dsgt',
                'train_batch_size': dsg_batch,
                'optimizer_config': {
                    'alg_name': 'dsgt',
                    'alpha': 0.001,
                    'outer_iterations': args.rounds,
                    'init_grads': True,
                },
            },
            'dsgd': {
                **common,
                'problem_name': 'dsgd',
                'train_batch_size': dsg_batch,
                'optimizer_config': {
                    'alg_name': 'dsgd',
                    'alpha0': 0.001,
                    'mu': 0.001,
                    'outer_iterations': args.rounds,
                },
            },
        },
    }


def train_central(
    problem, args: argparse.Namespace, fresh_adam: bool
) -> tuple[torch.nn.Module, list[tuple[int, float]]]:
    """
    Adam on the union of the robots' scans, as many samples per round as all DiNNO robots together.

    ``fresh_adam``: a new Adam every round, exactly DiNNO's primal optimizer (persistant_primal_opt
    false) without the consensus terms; otherwise one persistent Adam (ordinary centralised
    training).
    """
    central = problem.central_problem()
    central.batch_size = NUM_ROBOTS * args.batch
    motions = [problem.motion(i) for i in range(NUM_ROBOTS)]
    for m in motions:  # the first scan each robot takes when it is built
        central.add_observation(m.observe(0))
    opt = torch.optim.Adam(central.model.parameters(), lr=args.lr_start)
    curve = []
    label = 'central (fresh Adam)' if fresh_adam else 'central (persistent Adam)'
    for k in range(args.rounds):
        for m in motions:
            central.add_observation(m.observe(k))
        lr = lr_at(k, args.lr_start, args.lr_finish, args.rounds, 'log')
        if fresh_adam:
            opt = torch.optim.Adam(central.model.parameters(), lr=lr)
        for group in opt.param_groups:
            group['lr'] = lr
        for _ in range(args.primal_iterations):
            loss = central.loss(central.next_batch())
            opt.zero_grad()
            loss.backward()
            opt.step()
        if (k + 1) % args.eval_every == 0 or k == args.rounds - 1:
            val = problem.evaluate(central.model)['validation_loss']
            curve.append((k + 1, val))
            print(f'{label} round {k + 1}: validation loss {val:.4f}', flush=True)
    return central.model, curve


def seen_mask(problem, rounds: int, step: int) -> np.ndarray:
    """Return the coarse cells any robot's lidar has seen along its route during the run."""
    seen = SeenMask(problem.grid, problem.lidar, step_px=step, num_beams=90)
    for i in range(NUM_ROBOTS):
        motion = problem.motion(i)
        poses = np.stack([motion.pose(k) for k in range(0, rounds, 2)])
        pix = problem.grid.world_to_pixel(poses[:, :2])
        seen.add(np.column_stack([pix, poses[:, 2]]))
    return seen.mask


def draw_maps(problem, meshes: dict[str, np.ndarray], out_png: Path) -> None:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    panels = [('true map', problem.true_mesh().numpy())] + list(meshes.items())
    fig, axes = plt.subplots(1, len(panels), figsize=(4.0 * len(panels), 3.4))
    for ax, (title, img) in zip(axes, panels):
        ax.imshow(img, cmap='gray_r', vmin=0, vmax=1, interpolation='nearest')
        ax.set_title(title)
        ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--rounds', type=int, default=600, help='rounds (paper: 4000)')
    parser.add_argument(
        '--batch', type=int, default=2000, help='DiNNO batch per primal step (paper: 12,500)'
    )
    parser.add_argument(
        '--primal-iterations', type=int, default=5, help='DiNNO primal steps per round (paper: 5)'
    )
    parser.add_argument('--lr-start', type=float, default=1e-3, help='paper: 1e-3')
    parser.add_argument('--lr-finish', type=float, default=1e-4, help='paper: 1e-4')
    parser.add_argument('--eval-every', type=int, default=100)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', type=Path, default=Path('results/bench'))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    start = time.perf_counter()

    if PLAN.is_file():
        map_section = {'path': str(PLAN), 'resolution': RESOLUTION, 'kind': 'mask'}
        print(f'map: {PLAN}')
    else:
        print(f'{PLAN} is absent: using a generated office of the same size (2167 x 1608 px)')
        map_section = {
            'generate': 'office',
            'generate_seed': 0,
            'resolution': RESOLUTION,
            'size_m': [2167 * RESOLUTION, 1608 * RESOLUTION],
        }
    config = parse_experiment(experiment_dict(args, map_section), base_dir=ROOT)
    print(
        f'settings: {NUM_ROBOTS} robots, {args.rounds} rounds (paper 4000), '
        f'DiNNO batch {args.batch} x {args.primal_iterations} primal Adam steps '
        f'(paper 12,500 x 5), lr {args.lr_start:g} -> {args.lr_finish:g} '
        f'(log), rho 0.3 x 1.0004^k; DSGD/DSGT batch {int(round(1.6 * args.batch))}, alpha 0.001; '
        f'disk graph radius {1500 * RESOLUTION:.1f} m; window 800 scans; 500 validation scans',
        flush=True,
    )

    result = run_experiment(config, progress=False)
    problem = build_problem(config, 'dinno')
    centrals = {}
    for fresh in (True, False):
        t0 = time.perf_counter()
        model, curve = train_central(problem, args, fresh)
        centrals['central_fresh' if fresh else 'central_persistent'] = (
            model,
            curve[-1][1],
            time.perf_counter() - t0,
        )
    best = min(centrals, key=lambda k: centrals[k][1])  # the stronger reference
    central_val = centrals[best][1]

    vals = {name: torch.as_tensor(m['validation_loss'][-1]) for name, m in result.results.items()}
    dinno_val = float(vals['dinno'].mean())
    step = config.problem_config.mesh_stride
    seen = seen_mask(problem, args.rounds, step)
    _, truth = occupancy_grid_truth(problem.grid, step)
    meshes = {
        f'{name} (robot 0)': torch.as_tensor(m['mesh_grid_density'][-1])[0].numpy()
        for name, m in result.results.items()
    }
    for name, (model, _, _) in centrals.items():
        meshes[name] = problem.mesh_grid_density(model).numpy()
    meshes['central'] = meshes[best]
    out_png = result.output_dir / 'learned_vs_true_map.png'
    draw_maps(
        problem,
        {k: meshes[k] for k in ('dinno (robot 0)', 'central', 'dsgd (robot 0)', 'dsgt (robot 0)')},
        out_png,
    )

    print('\npair     val loss (mean, min-max over robots)   map acc / IoU (seen area)   seconds')
    for key, name in (('dinno', 'dinno'), ('dsgd', 'dsgd'), ('dsgt', 'dsgt')):
        v = vals[name]
        q = map_quality(meshes[f'{name} (robot 0)'], truth, seen)
        print(
            f'{name:8s} {float(v.mean()):8.4f} ({float(v.min()):.4f} - {float(v.max()):.4f})'
            f'            {q["accuracy"]:.3f} / {q["iou"]:.3f}            '
            f'{result.seconds[key]:7.1f}'
        )
    for name, (_, val, secs) in centrals.items():
        q = map_quality(meshes[name], truth, seen)
        print(
            f'{name:18s} {val:8.4f}                      '
            f'{q["accuracy"]:.3f} / {q["iou"]:.3f}            {secs:7.1f}'
        )
    print(f'reference: {best} (the lower validation loss of the two centralised runs)')
    print(f'seen area: {100 * seen.mean():.1f}% of the map; picture: {out_png}')
    print(f'results: {result.output_dir}; total {time.perf_counter() - start:.0f} s')
    ratio = dinno_val / central_val if central_val > 0 else math.inf
    print(f'dinno_val={dinno_val:.4f} central_val={central_val:.4f} ratio={ratio:.4f}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
