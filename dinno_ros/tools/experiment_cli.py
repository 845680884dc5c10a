"""
``dinno-experiment CONFIG.yaml``: run a research-format experiment: each (problem, optimizer) pair.

Results go to ``[output_metadir or --out]/[YYYY-mm-dd_HH-MM-SS]_[name]/`` unless
``writeout: false``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='dinno-experiment', description=__doc__.strip().splitlines()[0]
    )
    parser.add_argument(
        'config', help="experiment YAML (a path, or a name under the package's config/experiments)"
    )
    parser.add_argument(
        '--device', choices=('cpu', 'cuda', 'auto'), help='override experiment.device'
    )
    parser.add_argument(
        '--rounds', type=int, help="override every pair's optimizer_config.outer_iterations"
    )
    parser.add_argument('--out', help='override experiment.output_metadir')
    parser.add_argument(
        '--runner',
        choices=('auto', 'batched', 'per_robot'),
        default='auto',
        help='offline runner: batched (all robots as one stacked model) when the optimizer and '
        'problem allow (auto), or forced',
    )
    parser.add_argument('--no-progress', action='store_true', help='no progress bars')
    parser.add_argument(
        '-q', '--quiet', action='store_true', help='warnings only (no evaluation lines)'
    )
    return parser


def _resolve(name: str):
    path = Path(name)
    if path.is_file():
        return path
    from dinno_ros.share import share_dir

    for candidate in (path, path.with_suffix('.yaml')):
        for folder in ('config/experiments', 'config'):
            shared = share_dir() / folder / candidate
            if shared.is_file():
                return shared
    raise FileNotFoundError(
        f"experiment config '{name}' is neither a file nor a name under config/experiments"
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO, format='%(message)s'
    )
    from dinno_ros.core.learning.experiment import run_experiment
    from dinno_ros.core.learning.experiment_config import load_experiment

    try:
        config = load_experiment(_resolve(args.config))
        result = run_experiment(
            config,
            out_dir=args.out,
            device=args.device,
            rounds=args.rounds,
            progress=not args.no_progress,
            runner=args.runner,
        )
    except (ValueError, FileNotFoundError) as exc:
        print(f'dinno-experiment: error: {exc}', file=sys.stderr)
        return 2
    for key, secs in result.seconds.items():
        print(f'{key}: {secs:.1f} s')
    if result.output_dir is not None:
        print(f'results: {result.output_dir}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
