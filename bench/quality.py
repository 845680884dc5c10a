#!/usr/bin/env python3
"""
Quality bench: every optimizer against one centralised model, on MNIST and on lidar mapping.

One run on the same data, with the tuned settings of ``bench/quality_mnist.py`` (real digits, 10
robots, hetero split, cycle graph) and ``bench/quality_lidar.py`` (7 robots on the real plan, disk
graph). The centralised model trains the same network from the same base weights on the union of
the robots' data with as many samples as all DiNNO robots together. Figures: MNIST mean node
top-1 accuracy on the 2,000 validation digits; lidar mean robot mIoU (occupied / free at 0.5)
inside the area the robots' lidars covered.

    .venv/bin/python bench/quality.py [--mnist-rounds 1000] [--lidar-rounds 600]

Last line: ``mnist_dinno_over_central=<r> mnist_dsgt_over_central=<r>
lidar_miou_dinno_over_central=<r> lidar_miou_central=<v>``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
import sys
import time

sys.path.insert(0, str(Path(__file__).resolve().parent))

import quality_lidar  # noqa: E402, I100 (sys.path)
import quality_mnist  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--mnist-rounds', type=int, default=1000)
    parser.add_argument('--lidar-rounds', type=int, default=600)
    parser.add_argument('--out', type=Path, default=Path('results/bench'))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format='%(message)s')
    start = time.perf_counter()
    if not (quality_mnist.DEFAULT_DATA / 't10k-images-idx3-ubyte.gz').is_file():
        print(f'no MNIST digits under {quality_mnist.DEFAULT_DATA}', file=sys.stderr)
        return 2
    mnist = quality_mnist.measure(
        quality_mnist.parse_args(
            ['--rounds', str(args.mnist_rounds), '--out', str(args.out / 'quality_mnist.png')]
        )
    )
    print(f'MNIST done after {time.perf_counter() - start:.0f} s\n', flush=True)
    lidar = quality_lidar.measure(
        quality_lidar.parse_args(['--rounds', str(args.lidar_rounds), '--out', str(args.out)])
    )
    print(f'total {time.perf_counter() - start:.0f} s')
    print(
        f'mnist_dinno_over_central={mnist["dinno"] / mnist["central"]:.4f} '
        f'mnist_dsgt_over_central={mnist["dsgt"] / mnist["central"]:.4f} '
        f'lidar_miou_dinno_over_central='
        f'{lidar["dinno"]["miou_seen"] / lidar["central"]["miou_seen"]:.4f} '
        f'lidar_miou_central={lidar["central"]["miou_seen"]:.4f}'
    )
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
