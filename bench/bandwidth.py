#!/usr/bin/env python3
"""
Accuracy per megabyte: what each optimizer sends to reach its accuracy on the real MNIST digits.

The world of ``bench/quality_mnist.py`` (8,000 / 2,000 split of the real t10k digits, 10 robots,
one digit class each, cycle graph, the same base weights). Every robot's optimizer messages are
counted as DDS carries them (``dinno_msgs/Weights`` CDR bytes, ``RobotWire``), the same count the
ROS robots make. Choco-SGD runs with DSGD's step sizes and rounds (the Choco-SGD paper's
comparison) and sends top-1% entries or 4-bit QSGD codes of its update; ``choco_uncompressed``,
Choco-SGD with top-1%'s consensus step and no compression, is the control that separates what the
compression costs from what the smaller consensus step costs.

    .venv/bin/python bench/bandwidth.py [--rounds 1000] [--algs dinno,dsgd,dsgt,choco_top1pct,...]

``--choco-rounds N`` runs the choco_* algorithms N rounds instead (an equal byte budget rather than
equal rounds: top-1% costs about 0.021 of DSGD's bytes per round).

Last line: ``choco_top1pct_acc_over_dsgd=<r> choco_top1pct_bytes_over_dsgd=<r>
best_acc_per_mb=<alg>`` (mean node top-1 accuracy after the last round; bytes sent by all robots),
then ``dsgd_rounds=<n> choco_rounds=<m>`` when the two ran different rounds.
"""

from __future__ import annotations

import argparse
from pathlib import Path
import sys
import time

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'bench'))

from dinno_ros.core.learning import registry  # noqa: E402
from dinno_ros.core.learning.agent import RobotAgent  # noqa: E402
from dinno_ros.core.learning.optimizers import DivergedError  # noqa: E402
from dinno_ros.core.learning.round import RoundGraph  # noqa: E402
from dinno_ros.core.learning.simulation import OfflineSwarm  # noqa: E402
from dinno_ros.core.threads import limit_threads  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import networkx as nx  # noqa: E402
from quality_mnist import (  # noqa: E402
    apply_overrides,
    mnist_problem,
    optimizer_configs,
    world_parser,
)
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402


def configs(rounds: int, gamma_top: float, gamma_qsgd: float) -> dict[str, dict]:
    """Return DiNNO, DSGD, DSGT (quality_mnist's) and Choco-SGD with DSGD's step sizes."""
    base = optimizer_configs(rounds)
    dsgd = base['dsgd']
    choco = {'alg_name': 'choco', 'alpha0': dsgd['alpha0'], 'mu': dsgd['mu']}
    choco['outer_iterations'] = rounds
    return {
        **base,
        'choco_top1pct': {
            **choco,
            'gamma': gamma_top,
            'compression': {'kind': 'top_k', 'fraction': 0.01},
        },
        'choco_uncompressed': {  # the control: top-1%'s gamma, nothing compressed
            **choco,
            'gamma': gamma_top,
            'compression': {'kind': 'identity'},
        },
        'choco_qsgd4bit': {
            **choco,
            'gamma': gamma_qsgd,
            'compression': {'kind': 'qsgd', 'levels': 7},
        },
    }


def run(problem, config: dict, graph: nx.Graph, rounds: int, eval_every: int, name: str) -> dict:
    """Run the rounds; record mean node accuracy and megabytes sent by all robots."""
    agents = []
    for i in range(problem.num_nodes):
        local = problem.local_problem(i)
        agents.append(RobotAgent(i, local, registry.build_optimizer(config, local)))
    swarm = OfflineSwarm(agents, RoundGraph(problem.num_nodes, fixed=graph))
    hist: dict[str, list[float]] = {'round': [], 'acc': [], 'mb': []}

    def evaluate(k: int) -> None:
        accs = [problem.evaluate(a.model)['top1_accuracy'] for a in agents]
        hist['round'].append(k)
        hist['acc'].append(sum(accs) / len(accs))
        hist['mb'].append(sum(a.bytes_sent for a in agents) / 1e6)

    evaluate(0)
    bar = tqdm(range(rounds), desc=name, unit='round', file=sys.stdout, mininterval=2.0)
    for k in bar:
        try:
            swarm.run_round(k)
        except DivergedError as err:
            print(f'{name}: {err}')
            hist['acc'].append(float('nan'))
            hist['mb'].append(sum(a.bytes_sent for a in agents) / 1e6)
            hist['round'].append(k + 1)
            break
        if (k + 1) % eval_every == 0 or k + 1 == rounds:
            evaluate(k + 1)
            bar.set_postfix(acc=f'{hist["acc"][-1]:.3f}', mb=f'{hist["mb"][-1]:.1f}')
    return hist


def plot(histories: dict[str, dict], path: Path) -> None:
    fig, (ax_r, ax_mb) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, hist in histories.items():
        ax_r.plot(hist['round'], hist['acc'], label=name)
        ax_mb.plot(hist['mb'][1:], hist['acc'][1:], label=name)
    ax_r.set(xlabel='round', ylabel='mean node top-1 accuracy', title='accuracy vs rounds')
    ax_mb.set(
        xlabel='megabytes sent by all robots',
        ylabel='mean node top-1 accuracy',
        title='accuracy vs bytes on the wire',
        xscale='log',
    )
    for ax in (ax_r, ax_mb):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle('MNIST, 10 robots, hetero split, cycle graph')
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = world_parser(
        __doc__,
        100,
        'dinno,dsgd,dsgt,choco_top1pct,choco_uncompressed,choco_qsgd4bit',
        'bandwidth.png',
    )
    ap.add_argument('--gamma-top', type=float, default=0.1, help='Choco top-1%% consensus step')
    ap.add_argument('--gamma-qsgd', type=float, default=0.1, help='Choco 4-bit consensus step')
    ap.add_argument(
        '--choco-rounds',
        type=int,
        default=None,
        help='rounds of the choco_* algorithms (default: --rounds)',
    )
    return ap.parse_args(argv)


def measure(args: argparse.Namespace) -> dict[str, dict]:
    limit_threads(args.threads)
    torch.manual_seed(args.seed)
    choco_rounds = args.choco_rounds or args.rounds
    table = configs(args.rounds, args.gamma_top, args.gamma_qsgd)
    for alg, config in table.items():
        if alg.startswith('choco'):
            config['outer_iterations'] = choco_rounds
    algs = [a for a in args.algs.split(',') if a]
    apply_overrides(table, args.set, algs)  # fail before anything runs
    problem = mnist_problem(args)
    print(
        f'MNIST: {args.nodes} robots, hetero split, cycle graph, {args.rounds} rounds '
        f'(choco_*: {choco_rounds}), '
        f'batch {args.batch}, {torch.get_num_threads()} threads'
    )
    histories = {}
    for alg in algs:
        print(f'  {alg}: {table[alg]}')
        t0 = time.perf_counter()
        rounds = table[alg]['outer_iterations']
        histories[alg] = run(
            problem, table[alg], nx.cycle_graph(args.nodes), rounds, args.eval_every, alg
        )
        histories[alg]['seconds'] = time.perf_counter() - t0
    print('\nalgorithm         mean node acc   MB sent (all robots)   acc per MB   seconds')
    for alg, h in histories.items():
        acc, mb = h['acc'][-1], h['mb'][-1]
        print(f'{alg:16s} {acc:14.4f} {mb:20.2f} {acc / mb:12.4f} {h["seconds"]:9.1f}')
    plot(histories, args.out)
    print(f'plot: {args.out}')
    return histories


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not (args.data_dir / 't10k-images-idx3-ubyte.gz').is_file():
        print(f'no MNIST digits under {args.data_dir}', file=sys.stderr)
        return 2
    h = measure(args)
    finite = [a for a in h if h[a]['acc'][-1] == h[a]['acc'][-1]] or list(h)
    best = max(finite, key=lambda a: h[a]['acc'][-1] / h[a]['mb'][-1])
    if 'choco_top1pct' in h and 'dsgd' in h:
        acc = h['choco_top1pct']['acc'][-1] / h['dsgd']['acc'][-1]
        mb = h['choco_top1pct']['mb'][-1] / h['dsgd']['mb'][-1]
        rounds = (h['dsgd']['round'][-1], h['choco_top1pct']['round'][-1])
        print(
            f'choco_top1pct_acc_over_dsgd={acc:.4f} choco_top1pct_bytes_over_dsgd={mb:.4f} '
            f'best_acc_per_mb={best}'
            + (
                f' dsgd_rounds={rounds[0]} choco_rounds={rounds[1]}'
                if rounds[0] != rounds[1]
                else ''
            )
        )
    else:
        print(f'best_acc_per_mb={best}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
