"""
Generated waypoints: random free waypoints with a minimum spacing, and route sets for N robots.

The overlap of a route set follows the paper's comparison (tight, some and minimal overlap). The
free space a robot can reach (largest 4-connected region of the inflated grid) is split into
``num_robots`` regions by k-means on the free cells; then

* ``minimal``: robot i draws its waypoints from region i only,
* ``some``: robot i draws from region i and the region whose centre is nearest to it,
* ``tight``: every robot draws from the same area, the ``ceil(N / 2)`` regions nearest the centre
  of the free space.

All waypoints lie in one connected region, so every waypoint is reachable from every other one.
"""

from __future__ import annotations

import logging
import math

import cv2
from dinno_ros.core.world.grid import GridMap
from dinno_ros.core.world.planner import inflate
import numpy as np

logger = logging.getLogger(__name__)

OVERLAPS = ('tight', 'some', 'minimal')


def reachable_free(grid: GridMap, robot_radius_m: float = 0.2) -> np.ndarray:
    """Return the largest 4-connected region of the inflated free space, [H, W] bool."""
    free = inflate(grid, robot_radius_m)
    n, labels = cv2.connectedComponents(free.astype(np.uint8), connectivity=4)
    if n <= 1:
        raise ValueError(
            f'map {grid.name!r} has no free space for a robot of radius {robot_radius_m} m'
        )
    sizes = np.bincount(labels.ravel(), minlength=n)
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def random_free_waypoints(
    grid: GridMap,
    num: int,
    seed: int | np.random.Generator = 0,
    robot_radius_m: float = 0.2,
    min_spacing_m: float = 1.0,
    region: np.ndarray | None = None,
    attempts: int = 200,
) -> list[tuple[float, float]]:
    """
    ``num`` random waypoints (metres, cell centres) in the reachable free space.

    They lie at least ``min_spacing_m`` apart; ``region`` (bool [H, W]) restricts where they may
    lie. When the spacing cannot be met, it is halved (with a warning) until it can.
    """
    rng = np.random.default_rng(seed)
    allowed = reachable_free(grid, robot_radius_m)
    if region is not None:
        allowed = allowed & region
    rows, cols = np.nonzero(allowed)
    if rows.size == 0:
        raise ValueError('no reachable free cell in the requested region')
    cells = _spaced_choice(
        rng, np.column_stack([rows, cols]), num, min_spacing_m / grid.resolution, attempts
    )
    xy = grid.pixel_to_world(np.column_stack([cells[:, 1] + 0.5, cells[:, 0] + 0.5]))
    return [(float(x), float(y)) for x, y in xy]


def _spaced_choice(
    rng: np.random.Generator, cells: np.ndarray, num: int, spacing_px: float, attempts: int
) -> np.ndarray:
    """
    Pick ``num`` cells by rejection sampling with a minimum spacing.

    The spacing is relaxed when impossible.
    """
    spacing = spacing_px
    while True:
        chosen: list[np.ndarray] = []
        tries = 0
        while len(chosen) < num and tries < attempts * num:
            tries += 1
            c = cells[rng.integers(cells.shape[0])]
            if all(np.hypot(*(c - o)) >= spacing for o in chosen):
                chosen.append(c)
        if len(chosen) == num:
            return np.array(chosen)
        if spacing < 1e-9:
            raise ValueError(f'cannot place {num} waypoints')
        logger.warning(
            'cannot place %d waypoints %.1f px apart; trying %.1f px', num, spacing, spacing / 2
        )
        spacing /= 2


def partition_free_space(
    free: np.ndarray, k: int, seed: int = 0, iters: int = 20, max_points: int = 20000
) -> tuple[np.ndarray, np.ndarray]:
    """
    k-means regions of the free cells.

    Labels [H, W] (-1 outside ``free``), centres [k, 2] (r, c).
    """
    rng = np.random.default_rng(seed)
    rows, cols = np.nonzero(free)
    pts = np.column_stack([rows, cols]).astype(np.float64)
    if len(pts) < k:
        raise ValueError(f'cannot split {len(pts)} free cells into {k} regions')
    sample = pts[rng.choice(len(pts), size=min(max_points, len(pts)), replace=False)]
    centres = _kmeans_pp_init(rng, sample, k)
    for _ in range(iters):
        lab = _nearest(sample, centres)
        for j in range(k):
            if np.any(lab == j):
                centres[j] = sample[lab == j].mean(axis=0)
    labels = np.full(free.shape, -1, dtype=np.int64)
    labels[rows, cols] = _nearest(pts, centres)
    return labels, centres


def _kmeans_pp_init(rng: np.random.Generator, pts: np.ndarray, k: int) -> np.ndarray:
    centres = [pts[rng.integers(len(pts))]]
    for _ in range(1, k):
        d2 = np.min(((pts[:, None, :] - np.array(centres)[None]) ** 2).sum(-1), axis=1)
        centres.append(pts[rng.choice(len(pts), p=d2 / d2.sum())])
    return np.array(centres)


def _nearest(pts: np.ndarray, centres: np.ndarray) -> np.ndarray:
    return np.argmin(((pts[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)


def overlap_regions(labels: np.ndarray, centres: np.ndarray, overlap: str) -> list[np.ndarray]:
    """
    Per robot, the bool mask of the free space its waypoints come from.

    See the module docstring.
    """
    k = len(centres)
    dist = np.linalg.norm(centres[:, None] - centres[None], axis=-1)
    if overlap == 'minimal':
        return [labels == i for i in range(k)]
    if overlap == 'some':
        masks = []
        for i in range(k):
            j = int(np.argsort(dist[i])[1]) if k > 1 else i
            masks.append((labels == i) | (labels == j))
        return masks
    free = labels >= 0
    rows, cols = np.nonzero(free)
    centre = np.array([rows.mean(), cols.mean()])
    near = np.argsort(np.linalg.norm(centres - centre, axis=1))[: max(1, math.ceil(k / 2))]
    shared = np.isin(labels, near)
    return [shared] * k


def random_route_set(
    grid: GridMap,
    num_robots: int,
    waypoints_per_robot: int,
    overlap: str = 'some',
    seed: int = 0,
    robot_radius_m: float = 0.2,
    min_spacing_m: float = 1.0,
) -> list[list[tuple[float, float]]]:
    """
    Waypoints (metres) for ``num_robots`` robots.

    With ``tight``, ``some`` or ``minimal`` overlap.
    """
    if overlap not in OVERLAPS:
        raise ValueError(f'overlap must be one of {list(OVERLAPS)}, got {overlap!r}')
    if num_robots < 1 or waypoints_per_robot < 1:
        raise ValueError(
            f'num_robots and waypoints_per_robot must be >= 1, got {num_robots}, '
            f'{waypoints_per_robot}'
        )
    free = reachable_free(grid, robot_radius_m)
    labels, centres = partition_free_space(free, num_robots, seed=seed)
    regions = overlap_regions(labels, centres, overlap)
    rng = np.random.default_rng(seed)
    return [
        random_free_waypoints(
            grid, waypoints_per_robot, rng, robot_radius_m, min_spacing_m, region=m
        )
        for m in regions
    ]
