#!/usr/bin/env python3
"""
Lidar mapping quality: the robots' learned maps against a centralised model's, by seen-area mIoU.

Seven robots drive their own A* routes through the DiNNO paper's floorplan (CubiCasa5k plan 32, the
wall mask in ../shared/data/floorplans/dinno_32_walls.png; a generated office of the same size when
absent), scan with the paper's lidar (20 beams, 25 samples per beam, beam length 0.2) and learn the
map on a disk graph of their positions with DiNNO (by default its tracked primal step, rho 0.003 x
1.008^k, dual step 0.1; ``--primal-step full --rho-init 0.3 --rho-scaling 1.0004 --dual-step 1`` is
the paper's);
DSGT and DSGD run on the same routes and base weights. The centralised reference trains the same
network from the same base weights on the union of the robots' scans (one sliding window of 7 x the
robots' window) with as many samples per round as all DiNNO robots together (5 Adam steps of 7 x
the robot batch, the same learning-rate schedule): with one persistent Adam (ordinary training)
and, with ``--central persistent,fresh``, also with a fresh Adam every round (DiNNO's primal
optimizer without the consensus terms); the better of the two is the reference.

The figure: each robot's learned map thresholded at 0.5 against the true map, mean IoU of the
occupied and free classes inside the cells the robots' lidars covered during the run (360 beams
from every pose), averaged over robots (the ``map_iou`` metric). The paper's validation loss is
printed beside it; it rewards blur where nobody looked. Reduced from the paper to fit a 2-core
CPU: 4000 -> --rounds rounds, batch 12,500 -> --batch (DSGD/DSGT 20,000 -> 1.6 x --batch).

    .venv/bin/python bench/quality_lidar.py [--rounds 600] [--algs dinno,dsgt,dsgd] [--out DIR]

Last line: ``dinno_miou_seen=<m> central_miou_seen=<c> ratio=<m/c> dinno_val=<v> central_val=<w>``.
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
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dinno_ros.core.learning.build import build_problem  # noqa: E402, I100 (sys.path)
from dinno_ros.core.learning.experiment import run_experiment  # noqa: E402
from dinno_ros.core.learning.experiment_config import parse_experiment  # noqa: E402
from dinno_ros.core.learning.optimizers.schedules import lr_at  # noqa: E402
from dinno_ros.core.threads import limit_threads  # noqa: E402

PLAN = ROOT.parent / 'shared' / 'data' / 'floorplans' / 'dinno_32_walls.png'
RESOLUTION = 0.015  # metres per pixel of the plan (CubiCasa5k plans: about 1-2 cm per pixel)
NUM_ROBOTS = 7


def experiment_dict(args: argparse.Namespace, map_section: dict, algs: list[str]) -> dict:
    metrics = [
        'forward_pass_count',
        'train_loss_moving_average',
        'validation_loss',
        'consensus_error',
        'mesh_grid_density',
        'map_iou',
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
            'model': {'shape': [2, 256, 64, 64, 64, 1], 'scale': args.scale},
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
            key: pair for key, pair in pair_configs(args, common, dsg_batch).items() if key in algs
        },
    }


def pair_configs(args: argparse.Namespace, common: dict, dsg_batch: int) -> dict[str, dict]:
    """Return the three (problem, optimizer) pairs: DiNNO, DSGT and DSGD."""
    return {
        'dinno': {
            **common,
            'problem_name': 'dinno',
            'train_batch_size': args.batch,
            'optimizer_config': {
                'alg_name': 'dinno',
                'rho_init': args.rho_init,
                'rho_scaling': args.rho_scaling,
                'outer_iterations': args.rounds,
                'primal_iterations': args.primal_iterations,
                'primal_optimizer': args.primal_optimizer,
                'persistant_primal_opt': args.persistent,
                'dual_step': args.dual_step,
                'primal_step': args.primal_step,
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
                'alpha': args.dsgt_alpha,
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
                'alpha0': args.dsgd_alpha0,
                'mu': args.dsgd_mu,
                'outer_iterations': args.rounds,
            },
        },
    }


def adam_steps(learner, opt: torch.optim.Optimizer, lr: float, steps: int) -> None:
    """Take ``steps`` optimizer steps at ``lr``, each on a fresh minibatch of ``learner``'s."""
    for group in opt.param_groups:
        group['lr'] = lr
    for _ in range(steps):
        loss = learner.loss(learner.next_batch())
        opt.zero_grad()
        loss.backward()
        opt.step()


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
    for k in tqdm(range(args.rounds), desc=label, unit='round', mininterval=5.0, leave=False):
        for m in motions:
            central.add_observation(m.observe(k))
        lr = lr_at(k, args.lr_start, args.lr_finish, args.rounds, 'log')
        if fresh_adam:
            opt = torch.optim.Adam(central.model.parameters(), lr=lr)
        adam_steps(central, opt, lr, args.primal_iterations)
        if (k + 1) % args.eval_every == 0 or k == args.rounds - 1:
            val = problem.evaluate(central.model)['validation_loss']
            curve.append((k + 1, val))
    return central.model, curve


def train_fedavg(problem, args: argparse.Namespace) -> torch.nn.Module:
    """
    Run the control: each robot's own Adam on its own scans, the models averaged every round.

    Exact averaging on a complete graph (FedAvg) bounds what robots with local Adams reach.
    """
    robots = [problem.local_problem(i) for i in range(NUM_ROBOTS)]
    motions = [problem.motion(i) for i in range(NUM_ROBOTS)]
    for robot, motion in zip(robots, motions):
        robot.batch_size = args.batch
        robot.add_observation(motion.observe(0))
    opts = [torch.optim.Adam(r.model.parameters(), lr=args.lr_start) for r in robots]
    for k in tqdm(range(args.rounds), desc='fedavg', unit='round', mininterval=5.0, leave=False):
        lr = lr_at(k, args.lr_start, args.lr_finish, args.rounds, 'log')
        for robot, motion, opt in zip(robots, motions, opts):
            robot.add_observation(motion.observe(k))
            adam_steps(robot, opt, lr, args.primal_iterations)
        with torch.no_grad():
            for group in zip(*(r.model.parameters() for r in robots)):
                mean = torch.stack(group).mean(dim=0)
                for p in group:
                    p.copy_(mean)
    return robots[0].model


def coverage_mask(problem, rounds: int) -> np.ndarray:
    """Return the cells the map_iou metric counts: 360 beams from every robot pose of the run."""
    coverage = problem.coverage()
    for i in range(NUM_ROBOTS):
        motion = problem.motion(i)
        problem.add_coverage(coverage, np.stack([motion.pose(k) for k in range(rounds)]))
    return coverage.mask


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


def plan_section() -> dict:
    """Return the experiment's ``map:``: the paper's plan, or a generated office without it."""
    if PLAN.is_file():
        print(f'map: {PLAN}')
        return {'path': str(PLAN), 'resolution': RESOLUTION, 'kind': 'mask'}
    print(f'{PLAN} is absent: using a generated office of the same size (2167 x 1608 px)')
    return {
        'generate': 'office',
        'generate_seed': 0,
        'resolution': RESOLUTION,
        'size_m': [2167 * RESOLUTION, 1608 * RESOLUTION],
    }


def measure(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """
    Run the optimizers and the centralised model on the same routes and base weights.

    Returns, per run, ``miou_seen`` (mean over robots), ``val`` and ``seconds``; ``central`` is
    the better of the centralised runs by seen-area mIoU.
    """
    limit_threads(args.threads)
    algs = [a for a in args.algs.split(',') if a]
    section = plan_section()
    # every pair in the world's config (routes, base weights); only ``algs`` run
    config = parse_experiment(experiment_dict(args, section, ['dinno', 'dsgt', 'dsgd']), ROOT)
    print(
        f'settings: {NUM_ROBOTS} robots, {args.rounds} rounds (paper 4000), '
        f'DiNNO batch {args.batch} x {args.primal_iterations} {args.primal_optimizer} steps '
        f'(paper 12,500 x 5), lr {args.lr_start:g} -> {args.lr_finish:g} (log), '
        f'rho {args.rho_init:g} x {args.rho_scaling:g}^k, dual step {args.dual_step:g}, '
        f'{args.primal_step} primal step, '
        f'persistent primal optimizer {args.persistent}, sine scale {args.scale:g}; '
        f'DSGD/DSGT batch {int(round(1.6 * args.batch))}; disk graph radius '
        f'{1500 * RESOLUTION:.1f} m; window 800 scans; 500 validation scans; '
        f'{torch.get_num_threads()} torch threads',
        flush=True,
    )
    runs = parse_experiment(experiment_dict(args, section, algs), ROOT) if algs else None
    result = run_experiment(runs, progress=True) if runs else None
    problem = build_problem(config, 'dinno')
    seen = coverage_mask(problem, args.rounds)
    figures: dict[str, dict[str, float]] = {}
    meshes: dict[str, np.ndarray] = {}
    for name, metrics in result.results.items() if result else ():
        robot_meshes = torch.as_tensor(metrics['mesh_grid_density'][-1]).numpy()
        mious = torch.as_tensor(metrics['map_iou'][-1])[:, 0].tolist()  # the same coverage
        figures[name] = {
            'miou_seen': float(np.mean(mious)),
            'miou_seen_min': min(mious),
            'val': float(torch.as_tensor(metrics['validation_loss'][-1]).mean()),
            'seconds': result.seconds[name],
        }
        meshes[f'{name} (robot 0)'] = robot_meshes[0]

    def record(name: str, model: torch.nn.Module, val: float, t0: float) -> None:
        """Add one single-model run's figures and learned map."""
        meshes[name] = problem.mesh_grid_density(model).numpy()
        figures[name] = {
            'miou_seen': float(problem.map_iou(meshes[name], seen)[0]),
            'val': val,
            'seconds': time.perf_counter() - t0,
        }

    for kind in [k for k in args.central.split(',') if k]:
        t0 = time.perf_counter()
        model, curve = train_central(problem, args, kind == 'fresh')
        record(f'central_{kind}', model, curve[-1][1], t0)
    if args.fedavg:
        t0 = time.perf_counter()
        record('fedavg', train_fedavg(problem, args), math.nan, t0)
    centrals = [k for k in figures if k.startswith('central_')]
    if not centrals:  # --central '': the optimizers only
        figures['central'] = {'miou_seen': math.nan, 'val': math.nan, 'seconds': 0.0}
        best = 'none'
    else:
        best = max(centrals, key=lambda k: figures[k]['miou_seen'])
        figures['central'] = figures[best]

    print('\nlidar      mIoU seen (min robot)   over central   val loss   seconds')
    for name, f in figures.items():
        if name == 'central':
            continue
        low = f' ({f["miou_seen_min"]:.3f})' if 'miou_seen_min' in f else ' ' * 8
        print(
            f'{name:18s} {f["miou_seen"]:.3f}{low}   '
            f'{f["miou_seen"] / figures["central"]["miou_seen"]:8.3f}   '
            f'{f["val"]:8.3f} {f["seconds"]:9.1f}'
        )
    out_dir = result.output_dir if result and result.output_dir else Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    out_png = out_dir / 'learned_vs_true_map.png'
    draw_maps(problem, meshes, out_png)
    print(f'reference: {best}; seen area {100 * seen.mean():.1f}% of the map; picture: {out_png}')
    return figures


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--rounds', type=int, default=600, help='rounds (paper: 4000)')
    parser.add_argument(
        '--batch', type=int, default=2000, help='DiNNO batch per primal step (paper: 12,500)'
    )
    parser.add_argument(
        '--primal-iterations', type=int, default=5, help='DiNNO primal steps per round (paper: 5)'
    )
    parser.add_argument('--lr-start', type=float, default=5e-3, help='paper: 1e-3')
    parser.add_argument('--lr-finish', type=float, default=5e-4, help='paper: 1e-4')
    parser.add_argument(
        '--rho-init', type=float, default=0.003, help='paper: 0.3 (with --primal-step full)'
    )
    parser.add_argument(
        '--rho-scaling', type=float, default=1.008, help='paper: 1.0004 (with --primal-step full)'
    )
    parser.add_argument(
        '--primal-optimizer', default='adam', help='adam | adamw | sgd (paper: adam)'
    )
    parser.add_argument(
        '--scale',
        type=float,
        default=0.05,
        help='sine frequency scale of the first layer (paper: 0.05)',
    )
    parser.add_argument(
        '--dual-step', type=float, default=0.1, help='dual ascent step / rho (paper: 1.0)'
    )
    parser.add_argument(
        '--primal-step',
        default='tracked',
        help='tracked (Adam on the gradient-tracked swarm mean, then the exact consensus prox) | '
        "preconditioned (each robot's Adam on its data loss, then the prox) | full (paper: Adam "
        'on the whole augmented Lagrangian)',
    )
    parser.add_argument(
        '--persistent',
        action=argparse.BooleanOptionalAction,
        default=True,
        help='one Adam per robot for the whole run (persistant_primal_opt; paper: false)',
    )
    parser.add_argument('--dsgt-alpha', type=float, default=0.001)
    parser.add_argument('--dsgd-alpha0', type=float, default=0.001)
    parser.add_argument('--dsgd-mu', type=float, default=0.001)
    parser.add_argument('--algs', default='dinno,dsgt,dsgd', help='comma-separated pairs to run')
    parser.add_argument(
        '--central', default='persistent', help='centralised runs: persistent and/or fresh (Adam)'
    )
    parser.add_argument(
        '--fedavg',
        action='store_true',
        help='also run the control: local Adams, the models averaged after every round',
    )
    parser.add_argument('--eval-every', type=int, default=100)
    parser.add_argument('--threads', type=int, default=2, help='torch threads')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', type=Path, default=Path('results/bench'))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format='%(message)s')
    start = time.perf_counter()
    figures = measure(args)
    dinno = figures.get('dinno', {'miou_seen': math.nan, 'val': math.nan})
    central = figures['central']
    print(f'total {time.perf_counter() - start:.0f} s')
    print(
        f'dinno_miou_seen={dinno["miou_seen"]:.4f} central_miou_seen={central["miou_seen"]:.4f} '
        f'ratio={dinno["miou_seen"] / central["miou_seen"]:.4f} '
        f'dinno_val={dinno["val"]:.4f} central_val={central["val"]:.4f}'
    )
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
