"""
Planner and routes.

Optimal A*, collision-free smoothed paths through the waypoints, clear errors.
"""

from __future__ import annotations

import heapq
import math
from pathlib import Path

import cv2
from dinno_ros.core.world.grid import GridMap
from dinno_ros.core.world.planner import (
    astar,
    inflate,
    line_is_free,
    NoPathError,
    plan_route,
    resample,
    waypoint_cell,
    world_to_pixel_poses,
)
from dinno_ros.core.world.planner import (
    Path as RoutePath,
)
from dinno_ros.core.world.routes import (
    OVERLAPS,
    random_free_waypoints,
    random_route_set,
    reachable_free,
)
import numpy as np
import pytest
from reference_astar import reference_astar

DATA = Path(__file__).resolve().parents[1].parent / 'shared' / 'data'
PLAN = DATA / 'floorplans' / 'dinno_32_walls.png'


def rooms_grid() -> GridMap:
    """Two rooms joined by a door, a closed-off room, 0.05 m/px."""
    occ = np.zeros((100, 140), dtype=bool)
    occ[:3], occ[-3:], occ[:, :3], occ[:, -3:] = True, True, True, True
    occ[:, 60:63] = True
    occ[40:60, 60:63] = False  # door, 1 m wide
    occ[70:73, 63:] = True  # closed room at the bottom right
    occ[10:30, 20:40] = True  # a block
    return GridMap(occ, resolution=0.05, name='rooms')


@pytest.fixture(scope='module')
def real_grid() -> GridMap:
    if not PLAN.exists():
        pytest.skip(f'shared floorplan data absent: {PLAN}')
    return GridMap(
        cv2.imread(str(PLAN), cv2.IMREAD_GRAYSCALE) > 127, resolution=0.05, name='dinno_32'
    )


def dijkstra_cost(free: np.ndarray, start, goal) -> float:
    """Return the reference shortest 8-connected cost without corner cutting (plain Dijkstra)."""
    h, w = free.shape
    dist = {start: 0.0}
    heap = [(0.0, start)]
    while heap:
        d, (r, c) = heapq.heappop(heap)
        if (r, c) == goal:
            return d
        if d > dist[(r, c)]:
            continue
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                nr, nc = r + dr, c + dc
                if (dr, dc) == (0, 0) or not (0 <= nr < h and 0 <= nc < w) or not free[nr, nc]:
                    continue
                if dr and dc and not (free[r, nc] and free[nr, c]):
                    continue
                nd = d + (math.sqrt(2) if dr and dc else 1.0)
                if nd < dist.get((nr, nc), math.inf):
                    dist[(nr, nc)] = nd
                    heapq.heappush(heap, (nd, (nr, nc)))
    return math.inf


def path_cost(cells: np.ndarray) -> float:
    d = np.abs(np.diff(cells, axis=0))
    assert np.all(d.max(axis=1) == 1), 'steps must be to 8-neighbours'
    return float(np.sum(np.where(d.sum(axis=1) == 2, math.sqrt(2), 1.0)))


def assert_cells_valid(free: np.ndarray, cells: np.ndarray) -> None:
    assert free[cells[:, 0], cells[:, 1]].all()
    for (r0, c0), (r1, c1) in zip(cells[:-1], cells[1:]):
        if r0 != r1 and c0 != c1:
            assert free[r0, c1] and free[r1, c0], 'corner cut'


def random_map(
    rng: np.random.Generator, h: int, w: int, blocked: float, blocky: bool
) -> np.ndarray:
    """
    Random free mask.

    Salt-and-pepper obstacles, or blocks of 3x3 cells (walls, corridors, pockets).
    """
    if not blocky:
        return rng.random((h, w)) >= blocked
    coarse = (rng.random((h // 3 + 1, w // 3 + 1)) >= blocked).astype(np.uint8)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_NEAREST) > 0


@pytest.mark.parametrize('search', [astar, reference_astar], ids=['jps', 'reference'])
def test_astar_is_optimal_and_never_cuts_corners(search):
    rng = np.random.default_rng(0)
    for trial in range(6):
        free = rng.random((40, 50)) > 0.3
        n, labels = cv2.connectedComponents(free.astype(np.uint8), connectivity=4)
        big = np.argmax(np.bincount(labels.ravel())[1:]) + 1
        rows, cols = np.nonzero(labels == big)
        a, b = rng.choice(len(rows), 2, replace=False)
        start, goal = (int(rows[a]), int(cols[a])), (int(rows[b]), int(cols[b]))
        cells = search(free, start, goal)
        assert tuple(cells[0]) == start and tuple(cells[-1]) == goal
        assert_cells_valid(free, cells)
        ref = dijkstra_cost(free, start, goal)
        assert path_cost(cells) == pytest.approx(ref, abs=1e-9), (trial, path_cost(cells), ref)


def test_jps_matches_reference_astar_on_random_maps():
    """
    JPS: same octile length as cell-by-cell A*.

    Same reachability, valid cells, no corner cutting.
    """
    rng = np.random.default_rng(7)
    for trial in range(400):
        h, w = (int(v) for v in rng.integers(2, 40, 2))
        free = random_map(rng, h, w, rng.uniform(0.0, 0.5), blocky=trial % 3 == 0)
        rows, cols = np.nonzero(free)
        if len(rows) < 2:
            continue
        a, b = rng.choice(len(rows), 2, replace=False)
        start, goal = (int(rows[a]), int(cols[a])), (int(rows[b]), int(cols[b]))
        try:
            ref = reference_astar(free, start, goal)
        except NoPathError:
            with pytest.raises(NoPathError):
                astar(free, start, goal)
            continue
        cells = astar(free, start, goal)
        assert tuple(cells[0]) == start and tuple(cells[-1]) == goal
        assert_cells_valid(free, cells)
        assert path_cost(cells) == pytest.approx(path_cost(ref), abs=1e-9), (trial, start, goal)


def test_jps_matches_reference_astar_on_real_plan(real_grid):
    free = inflate(real_grid, 0.2)
    n, labels = cv2.connectedComponents(free.astype(np.uint8), connectivity=4)
    big = np.argmax(np.bincount(labels.ravel())[1:]) + 1
    rows, cols = np.nonzero(labels == big)
    rng = np.random.default_rng(5)
    for _ in range(4):
        a, b = rng.choice(len(rows), 2, replace=False)
        start, goal = (int(rows[a]), int(cols[a])), (int(rows[b]), int(cols[b]))
        cells = astar(free, start, goal)
        assert tuple(cells[0]) == start and tuple(cells[-1]) == goal
        assert_cells_valid(free, cells)
        ref = reference_astar(free, start, goal)
        assert path_cost(cells) == pytest.approx(path_cost(ref), abs=1e-9)


def test_jps_reused_buffers_do_not_leak_between_queries():
    """
    Queries on different masks of one shape (the buffers are shared).

    Each sees only its own mask.
    """
    open_ = np.ones((30, 30), dtype=bool)
    walled = open_.copy()
    walled[:, 15] = False
    walled[28, 15] = True  # one gap at the bottom
    for _ in range(3):
        assert path_cost(astar(open_, (0, 0), (0, 29))) == pytest.approx(29.0)
        detour = astar(walled, (0, 0), (0, 29))
        assert_cells_valid(walled, detour)
        assert path_cost(detour) == pytest.approx(dijkstra_cost(walled, (0, 0), (0, 29)))
        with pytest.raises(NoPathError):
            astar(walled & (np.arange(30)[:, None] < 20), (0, 0), (0, 29))
    np.testing.assert_array_equal(astar(open_, (3, 4), (3, 4)), [[3, 4]])


def test_astar_diagonal_squeeze_is_blocked():
    free = np.ones((5, 5), dtype=bool)
    free[:, 2] = False
    free[2, 2] = True
    free[1, 1] = free[3, 3] = True
    free[2, 1] = (
        False  # the only way through (2,2) from the left is diagonal from (1,1): a corner cut
    )
    free[2, 3] = False
    with pytest.raises(NoPathError, match='no path'):
        astar(free, (2, 0), (2, 4))
    with pytest.raises(ValueError, match='start'):
        astar(free, (0, 2), (2, 4))


def test_line_is_free_supercover():
    free = np.ones((5, 5), dtype=bool)
    free[1, 2] = False
    assert not line_is_free(free, 0, 0, 2, 4)  # passes through cell (1, 2)
    free2 = np.ones((4, 4), dtype=bool)
    free2[0, 1] = False
    assert not line_is_free(free2, 0, 0, 1, 1)  # through the corner touching (0, 1)
    assert line_is_free(free2, 1, 0, 3, 2)


def check_route(grid: GridMap, waypoints, radius: float) -> RoutePath:
    path = plan_route(grid, waypoints, robot_radius_m=radius)
    free = inflate(grid, radius)
    rc = np.floor(grid.world_to_pixel(path.xy)[:, ::-1]).astype(np.int64)
    for a, b in zip(rc[:-1], rc[1:]):
        assert line_is_free(free, a[0], a[1], b[0], b[1]), 'segment leaves the inflated free space'
    # the waypoints are visited in order
    assert len(path.waypoint_index) == len(waypoints)
    assert np.all(np.diff(path.waypoint_index) >= 0)
    for k, wp in zip(path.waypoint_index, waypoints):
        assert tuple(rc[k]) == waypoint_cell(grid, wp)
    # every point of the dense path keeps the robot radius from the walls
    dense = path.poses(0.5, 0.01)
    edt = cv2.distanceTransform(np.pad(grid.free, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]
    pxy = grid.world_to_pixel(dense[:, :2])
    cells = np.floor(pxy).astype(int)
    assert np.all(
        edt[cells[:, 1], cells[:, 0]] - math.sqrt(0.5) >= radius / grid.resolution - 1e-6
    )
    return path


def test_route_through_door_is_collision_free():
    grid = rooms_grid()
    wps = [(0.5, 4.0), (5.0, 4.5), (6.5, 3.0), (1.5, 0.5)]
    path = check_route(grid, wps, radius=0.2)
    assert path.length_m > 8.0
    assert len(path.xy) < 40  # smoothed to a few vertices


def test_route_on_real_plan(real_grid):
    wps = random_free_waypoints(real_grid, 4, seed=3, min_spacing_m=5.0)
    check_route(real_grid, wps, radius=0.2)


def test_unreachable_or_blocked_waypoint_is_named():
    grid = rooms_grid()
    with pytest.raises(ValueError, match=r'waypoint 2 at \(5\.000, 0\.500\) m is unreachable'):
        plan_route(grid, [(0.5, 4.0), (5.0, 4.5), (5.0, 0.5)])
    with pytest.raises(ValueError, match=r'waypoint 1 at \(1\.500, 3\.500\) m is in an obstacle'):
        plan_route(grid, [(0.5, 4.0), (1.5, 3.5)])
    with pytest.raises(ValueError, match=r'waypoint 0 .* outside'):
        plan_route(grid, [(-1.0, 4.0), (0.5, 4.0)])


def test_path_resample_and_pose_at():
    path = RoutePath(np.array([[0.0, 0.0], [2.0, 0.0], [2.0, 1.0]]), speed_m_s=0.5)
    assert path.length_m == pytest.approx(3.0)
    poses = resample(path, 0.5, 0.2)  # every 0.1 m
    assert len(poses) == 31
    np.testing.assert_allclose(poses[-1], [2.0, 1.0, math.pi / 2])
    np.testing.assert_allclose(poses[5], [0.5, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(np.diff(poses[:, :2], axis=0), axis=1)[:19], 0.1)
    np.testing.assert_allclose(path.pose_at(2.0), [1.0, 0.0, 0.0])
    back = path.pose_at(8.0)  # 4 m: ping-pong, 1 m back from the end, heading down (-pi/2)
    np.testing.assert_allclose(back[:2], [2.0, 0.0], atol=1e-12)
    loop = RoutePath(path.xy, speed_m_s=0.5, end_mode='loop')
    np.testing.assert_allclose(loop.pose_at(8.0)[:2], [1.0, 0.0])
    stop = RoutePath(path.xy, speed_m_s=0.5, end_mode='stop')
    np.testing.assert_allclose(stop.pose_at(100.0)[:2], [2.0, 1.0])
    with pytest.raises(ValueError, match='end_mode'):
        RoutePath(path.xy, end_mode='bounce')


def test_pixel_poses_match_grid_frame():
    grid = rooms_grid()
    path = plan_route(grid, [(0.5, 4.0), (2.5, 3.0)], robot_radius_m=0.1)
    pix = path.pixel_poses(grid, 0.5, 0.1)
    np.testing.assert_allclose(pix[:, :2], grid.world_to_pixel(path.poses(0.5, 0.1)[:, :2]))
    assert np.all(grid.is_free_pixel(pix[:, :2]))
    np.testing.assert_allclose(world_to_pixel_poses(grid, [[0.0, 0.0, 1.0]]), [[0.0, 100.0, 1.0]])


@pytest.mark.parametrize('overlap', OVERLAPS)
def test_route_sets_are_reachable_and_spaced(overlap):
    grid = rooms_grid()
    routes = random_route_set(grid, 3, 4, overlap=overlap, seed=1, min_spacing_m=0.5)
    assert len(routes) == 3 and all(len(r) == 4 for r in routes)
    reach = reachable_free(grid, 0.2)
    for r in routes:
        for wp in r:
            assert reach[waypoint_cell(grid, wp)]
        pts = np.array(r)
        d = np.linalg.norm(pts[:, None] - pts[None], axis=-1) + np.eye(len(pts)) * 1e9
        assert d.min() >= 0.5 - 1e-9
        plan_route(grid, r)  # all reachable from each other
    assert random_route_set(grid, 3, 4, overlap=overlap, seed=1, min_spacing_m=0.5) == routes


def test_overlap_levels_differ():
    grid = rooms_grid()

    def spread(overlap):
        routes = random_route_set(grid, 3, 6, overlap=overlap, seed=2, min_spacing_m=0.3)
        centres = np.array([np.mean(r, axis=0) for r in routes])
        return np.mean(np.linalg.norm(centres[:, None] - centres[None], axis=-1))

    assert spread('tight') < spread('minimal')
    with pytest.raises(ValueError, match='overlap'):
        random_route_set(grid, 3, 4, overlap='lots')
