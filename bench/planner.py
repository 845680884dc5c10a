"""
A* speed: the numba planner (jump point search) vs a pure-Python 4-connected heapq A*.

The query runs corner to corner.

Grid: the 2167x1608 DiNNO plan in ../shared/data resized (area average) to 1000x1000 and inflated
by the robot radius, or a generated 1000x1000 map when the plan is absent. The query joins the free
cell nearest the top-left corner to the free cell nearest the bottom-right corner (same connected
region). The tests' cell-by-cell A* (``tests/reference_astar.py``) is timed too, and must give a
path of the same length.

    .venv/bin/python bench/planner.py [--repeats 9] [--radius 0.2]

Last line: ``astar_ms=<ms> speedup_vs_reference=<ratio>``.
"""

from __future__ import annotations

import argparse
import heapq
from pathlib import Path
import sys
import time

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dinno_ros.core.world.grid import GridMap  # noqa: E402, I100 (after the sys.path insert)
from dinno_ros.core.world.planner import astar, inflate, smooth  # noqa: E402

sys.path.insert(0, str(ROOT / 'tests'))
from reference_astar import reference_astar  # noqa: E402, I100 (the tests' oracle)

PLAN = ROOT.parent / 'shared' / 'data' / 'floorplans' / 'dinno_32_walls.png'
SIZE = 1000


def bench_grid() -> tuple[GridMap, str]:
    if PLAN.exists():
        img = cv2.imread(str(PLAN), cv2.IMREAD_GRAYSCALE)
        small = cv2.resize(img, (SIZE, SIZE), interpolation=cv2.INTER_AREA) > 127
        res = 0.05 * max(img.shape) / SIZE
        return GridMap(
            small, resolution=res, name='dinno_32_1000'
        ), f'{PLAN.name} resized to {SIZE}x{SIZE}'
    try:
        from dinno_ros.core.world.mapgen import generate_floorplan

        grid = generate_floorplan(kind='office', seed=0, size_px=(SIZE, SIZE))
        return grid, f'generated office {SIZE}x{SIZE} (mapgen, seed 0)'
    except ImportError:
        sys.path.insert(0, str(ROOT / 'bench'))
        from lidar import fallback_map

        return GridMap(
            fallback_map(SIZE, SIZE), resolution=0.05
        ), f'generated rooms {SIZE}x{SIZE} (fallback)'


def corner_query(free: np.ndarray) -> tuple[tuple[int, int], tuple[int, int]]:
    """
    Free cells nearest the top-left and bottom-right corners.

    Both in the largest 4-connected region.
    """
    n, labels = cv2.connectedComponents(free.astype(np.uint8), connectivity=4)
    sizes = np.bincount(labels.ravel(), minlength=n)
    sizes[0] = 0
    rows, cols = np.nonzero(labels == np.argmax(sizes))
    h, w = free.shape
    a = int(np.argmin(rows + cols))
    b = int(np.argmin((h - 1 - rows) + (w - 1 - cols)))
    return (int(rows[a]), int(cols[a])), (int(rows[b]), int(cols[b]))


def python_astar_4(free: np.ndarray, start, goal) -> list[tuple[int, int]]:
    """
    Pure-Python 4-connected A* with heapq and a Manhattan heuristic.

    In the reference code's style.
    """
    h, w = free.shape
    free_l = free.tolist()
    g = {start: 0}
    parent = {start: None}
    closed = set()
    heap = [(abs(start[0] - goal[0]) + abs(start[1] - goal[1]), 0, start)]
    while heap:
        _, gc, cur = heapq.heappop(heap)
        if cur in closed:
            continue
        if cur == goal:
            break
        closed.add(cur)
        r, c = cur
        for nr, nc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
            if 0 <= nr < h and 0 <= nc < w and free_l[nr][nc] and (nr, nc) not in closed:
                ng = gc + 1
                if ng < g.get((nr, nc), 1 << 60):
                    g[(nr, nc)] = ng
                    parent[(nr, nc)] = cur
                    heapq.heappush(
                        heap, (ng + abs(nr - goal[0]) + abs(nc - goal[1]), ng, (nr, nc))
                    )
    path, cur = [], goal
    while cur is not None:
        path.append(cur)
        cur = parent[cur]
    return path[::-1]


def path_length(cells: np.ndarray) -> float:
    """Octile length of an 8-connected cell path."""
    steps = np.abs(np.diff(cells, axis=0)).sum(axis=1)
    return float(np.sum(np.where(steps == 2, np.sqrt(2.0), 1.0)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument('--repeats', type=int, default=9)
    ap.add_argument('--radius', type=float, default=0.2, help='robot radius in metres')
    args = ap.parse_args(argv)

    grid, source = bench_grid()
    free = inflate(grid, args.radius)
    start, goal = corner_query(free)
    print(
        f'grid: {source}, {grid.resolution:.4f} m/px, robot radius {args.radius} m; '
        f'free after inflation {100 * free.mean():.1f}%'
    )
    print(f'query: {start} -> {goal}')
    smooth(free, astar(free, start, start))  # compile / load the numba caches
    smooth(free, np.array([start, start, start]))
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        path = astar(free, start, goal)
        times.append(time.perf_counter() - t0)
    ms = 1e3 * float(np.median(times))
    length = path_length(path)
    t0 = time.perf_counter()
    short = smooth(free, path)
    t_smooth = 1e3 * (time.perf_counter() - t0)
    print(
        'numba JPS (8-connected, octile, no corner cutting): '
        f'median {ms:.1f} ms over {args.repeats} runs '
        f'(min {1e3 * min(times):.1f}, max {1e3 * max(times):.1f}); '
        f'{len(path)} cells, {length:.3f} px; '
        f'smoothing {t_smooth:.1f} ms -> {len(short)} vertices'
    )
    reference_astar(free, start, start)
    t0 = time.perf_counter()
    cells = reference_astar(free, start, goal)
    cell_ms = 1e3 * (time.perf_counter() - t0)
    print(
        f'numba cell-by-cell A* (tests/reference_astar.py): {cell_ms:.1f} ms; '
        f'{path_length(cells):.3f} px'
    )
    if abs(path_length(cells) - length) > 1e-6:
        print('ERROR: JPS and cell-by-cell A* path lengths differ')
        return 1
    t0 = time.perf_counter()
    ref = python_astar_4(free, start, goal)
    ref_ms = 1e3 * (time.perf_counter() - t0)
    print(
        f'pure-Python 4-connected heapq A*: {ref_ms:.0f} ms; {len(ref)} cells, {len(ref) - 1} px'
    )
    print(f'astar_ms={ms:.2f} speedup_vs_reference={ref_ms / ms:.0f}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
