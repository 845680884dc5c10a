#!/usr/bin/env python3
"""
Regenerate the maps shipped in ``maps/`` (fixed seeds: the same files every run).

python scripts/generate_maps.py [--out maps]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dinno_ros.core.world.map_io import save_map
from dinno_ros.core.world.mapgen import generate_floorplan

# name -> generator arguments
SHIPPED_MAPS = {
    'apartment_small': {
        'kind': 'apartment',
        'seed': 3,
        'size_m': (14.0, 10.0),
        'resolution': 0.05,
    },
    'apartment_large': {
        'kind': 'apartment',
        'seed': 11,
        'size_m': (24.0, 17.0),
        'resolution': 0.05,
    },
    'office': {'kind': 'office', 'seed': 5, 'size_m': (36.0, 24.0), 'resolution': 0.05},
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', type=Path, default=Path(__file__).resolve().parents[1] / 'maps')
    args = parser.parse_args(argv)
    for name, kwargs in SHIPPED_MAPS.items():
        grid = generate_floorplan(name=name, **kwargs)
        save_map(grid, args.out / f'{name}.yaml')
        print(f'{name}: {grid.width}x{grid.height} px, free {grid.free.mean():.1%}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
