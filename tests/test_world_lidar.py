"""
Lidar tests.

Exactness against a dense-stepping reference, no beam through a wall, torch == numba, samples.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
from dinno_ros.core.world.grid import GridMap
from dinno_ros.core.world.lidar import beam_directions, Lidar, LidarConfig, random_free_poses
import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[1].parent / 'shared' / 'data'
PLAN = DATA / 'floorplans' / 'dinno_32_walls.png'


def synthetic_grid() -> GridMap:
    """Build a small apartment: outer walls, rooms, a door, a 1-pixel wall and a diagonal wall."""
    occ = np.zeros((120, 160), dtype=np.uint8)
    occ[:4, :] = occ[-4:, :] = occ[:, :4] = occ[:, -4:] = 1
    occ[:, 80:83] = 1
    occ[50:62, 80:83] = 0  # door
    occ[60, 4:60] = 1  # thin wall
    cv2.line(occ, (100, 20), (150, 100), 1, 3)
    occ[90:100, 20:30] = 1  # a box
    return GridMap(occ.astype(bool), resolution=0.05, name='synthetic')


@pytest.fixture(scope='module')
def real_grid() -> GridMap:
    if not PLAN.exists():
        pytest.skip(f'shared floorplan data absent: {PLAN}')
    return GridMap(
        cv2.imread(str(PLAN), cv2.IMREAD_GRAYSCALE) > 127, resolution=0.05, name='dinno_32'
    )


def dense_reference(
    grid: GridMap, poses: np.ndarray, angles: np.ndarray, rmax: float, step: float = 0.01
):
    """
    Brute force: step ``step`` px along every ray.

    The first t in an occupied (or outside) cell.
    """
    dx, dy = beam_directions(poses, angles)
    ts = np.arange(0.0, rmax + 1e-9, step)
    out = np.full(dx.shape, np.inf)
    for i in range(dx.shape[0]):
        for j in range(dx.shape[1]):
            c = np.floor(poses[i, 0] + ts * dx[i, j]).astype(np.int64)
            r = np.floor(poses[i, 1] + ts * dy[i, j]).astype(np.int64)
            inside = (c >= 0) & (c < grid.width) & (r >= 0) & (r < grid.height)
            occ = ~inside
            occ[inside] = grid.occupied[r[inside], c[inside]]
            k = int(np.argmax(occ))
            if occ[k]:
                out[i, j] = ts[k]
    return out


def crossed_occupied_cells(grid: GridMap, x0, y0, dx, dy, length) -> int:
    """
    How many occupied cells the open segment of this length enters.

    Exact slab test per cell.
    """
    x1, y1 = x0 + length * dx, y0 + length * dy
    c0, c1 = int(math.floor(min(x0, x1))), int(math.floor(max(x0, x1)))
    r0, r1 = int(math.floor(min(y0, y1))), int(math.floor(max(y0, y1)))
    pad = np.pad(grid.occupied, 1, constant_values=True)  # outside counts as occupied
    rows, cols = np.nonzero(pad[slice(r0 + 1, r1 + 2), slice(c0 + 1, c1 + 2)])
    if rows.size == 0:
        return 0
    cx, cy = (cols + c0).astype(float), (rows + r0).astype(float)
    lo, hi = np.zeros(cx.shape), np.full(cx.shape, length)
    for start, d, cell in ((x0, dx, cx), (y0, dy, cy)):
        if abs(d) < 1e-15:
            inside = (cell < start) & (start < cell + 1)
            lo[~inside], hi[~inside] = 1.0, 0.0
        else:
            a, b = (cell - start) / d, (cell + 1 - start) / d
            lo, hi = np.maximum(lo, np.minimum(a, b)), np.minimum(hi, np.maximum(a, b))
    return int(np.sum(hi - lo > 1e-7))


def check_against_reference(grid: GridMap, num_poses: int, num_beams: int, seed: int) -> None:
    lidar = Lidar(grid, LidarConfig(num_beams=num_beams))
    poses = random_free_poses(grid, num_poses, seed)
    poses[:, 2] = np.random.default_rng(seed).uniform(-math.pi, math.pi, num_poses)
    ranges, hit = lidar.cast(poses)
    ref = dense_reference(grid, poses, lidar.angles, lidar.range_max)
    both = hit & np.isfinite(ref)
    # hit flags agree except for hits within one reference step of range_max
    disagree = hit != np.isfinite(ref)
    assert np.all(np.abs(np.where(hit, ranges, ref)[disagree] - lidar.range_max) < 0.02)
    err = np.abs(ranges[both] - ref[both])
    assert both.sum() > 0.5 * hit.size
    assert np.median(err) <= 0.5, np.median(err)
    assert np.percentile(err, 99) <= 1.5, np.percentile(err, 99)
    assert np.all(
        ranges[both] <= ref[both] + 1e-9
    )  # the exact entry is never after the first sample inside


def check_no_wall_crossing(grid: GridMap, num_poses: int, num_beams: int, seed: int) -> None:
    lidar = Lidar(grid, LidarConfig(num_beams=num_beams))
    poses = random_free_poses(grid, num_poses, seed)
    scan = lidar.scan(poses)
    dx, dy = beam_directions(poses, lidar.angles)
    for i in range(num_poses):
        for j in range(num_beams):
            length = scan.ranges[i, j] if scan.hit[i, j] else scan.range_max
            assert (
                crossed_occupied_cells(
                    grid, poses[i, 0], poses[i, 1], dx[i, j], dy[i, j], float(length) - 1e-4
                )
                == 0
            ), (i, j)
            if scan.hit[i, j]:  # just past the hit is an occupied cell (or outside)
                px, py = scan.points[i, j] + 1e-3 * np.array([dx[i, j], dy[i, j]])
                assert not grid.is_free_pixel(np.array([px, py]))


def test_ranges_match_dense_reference_synthetic():
    check_against_reference(synthetic_grid(), num_poses=20, num_beams=16, seed=0)


def test_ranges_match_dense_reference_real(real_grid):
    check_against_reference(real_grid, num_poses=10, num_beams=30, seed=1)


def test_no_beam_crosses_a_wall_synthetic():
    check_no_wall_crossing(synthetic_grid(), num_poses=30, num_beams=24, seed=2)


def test_no_beam_crosses_a_wall_real(real_grid):
    check_no_wall_crossing(real_grid, num_poses=10, num_beams=36, seed=3)


def test_axis_aligned_and_diagonal_beams_exact():
    occ = np.zeros((50, 50), dtype=bool)
    occ[:, 40:] = True
    grid = GridMap(occ)
    lidar = Lidar(grid, LidarConfig(num_beams=4, max_range_px=100.0))  # angles -pi, -pi/2, 0, pi/2
    scan = lidar.scan(np.array([[10.5, 25.5, 0.0]]))
    # left: image edge at px=0; down (world -y = +py): edge at py=50; right: wall at px=40; up:
    # edge at py=0
    np.testing.assert_allclose(scan.ranges[0], [10.5, 24.5, 29.5, 25.5], atol=1e-9)
    assert scan.hit.all()
    np.testing.assert_allclose(scan.points[0, 2], [40.0, 25.5], atol=1e-5)
    diag = Lidar(
        grid, LidarConfig(num_beams=1, fov=0.1, angle_min=math.pi / 4, max_range_px=100.0)
    )
    r = diag.scan(np.array([[20.0, 30.0, 0.0]])).ranges[0, 0]  # up-right at 45 degrees
    assert (
        abs(r - 20.0 * math.sqrt(2)) < 1e-4
    )  # the wall at px=40 (t=20*sqrt2) before the top edge (30*sqrt2)


def test_no_hit_is_inf_and_pose_in_wall_is_zero():
    grid = GridMap(np.pad(np.zeros((200, 200), dtype=bool), 1, constant_values=True))
    lidar = Lidar(grid, LidarConfig(num_beams=8, max_range_px=20.0))
    scan = lidar.scan(np.array([[100.0, 100.0, 0.3], [0.5, 0.5, 0.0]]))
    assert not scan.hit[0].any() and np.isinf(scan.ranges[0]).all()
    d = np.linalg.norm(scan.points[0] - np.array([100.0, 100.0]), axis=1)
    np.testing.assert_allclose(d, 20.0, rtol=1e-6)  # no-hit points sit at range_max
    assert scan.hit[1].all() and (scan.ranges[1] == 0).all()


def test_torch_path_equals_numba_path():
    grids = [synthetic_grid()]
    if PLAN.exists():
        grids.append(GridMap(cv2.imread(str(PLAN), cv2.IMREAD_GRAYSCALE) > 127))
    for grid in grids:
        cfg = LidarConfig(num_beams=90)
        poses = random_free_poses(grid, 40, 5)
        a = Lidar(grid, cfg).scan(poses)
        b = Lidar(grid, cfg, device='cpu', backend='torch').scan(poses)
        np.testing.assert_array_equal(a.hit, b.hit)
        np.testing.assert_array_equal(a.ranges, b.ranges)
        np.testing.assert_array_equal(a.points, b.points)


def test_samples_follow_the_paper():
    grid = synthetic_grid()
    cfg = LidarConfig(num_beams=12, beam_samps=7, samp_exponent=2.0, beam_length=0.5)
    lidar = Lidar(grid, cfg)
    poses = random_free_poses(grid, 5, 7)
    scan = lidar.scan(poses)
    pts, labels = lidar.samples(poses, scan=scan)
    assert pts.shape == (5 * 12 * 7, 2) and labels.shape == (5 * 12 * 7,)
    assert pts.dtype == np.float32 and labels.dtype == np.float32
    pts = pts.reshape(5, 12, 7, 2) + np.array([grid.width / 2, grid.height / 2], dtype=np.float32)
    labels = labels.reshape(5, 12, 7)
    dx, dy = beam_directions(poses, lidar.angles)
    frac = np.linspace(0, 1, 7)
    assert scan.hit.any() and (~scan.hit).any()
    for i in range(5):
        for j in range(12):
            end = scan.ranges[i, j] if scan.hit[i, j] else scan.range_max
            t = (frac**2 if scan.hit[i, j] else frac) * end
            want = np.stack([poses[i, 0] + t * dx[i, j], poses[i, 1] + t * dy[i, j]], axis=1)
            np.testing.assert_allclose(pts[i, j], want, atol=1e-3)
            assert (labels[i, j, :-1] == 0).all()
            assert labels[i, j, -1] == float(scan.hit[i, j])
            np.testing.assert_allclose(pts[i, j, -1], scan.points[i, j], atol=1e-3)
            # samples before the hit lie in free space
            assert grid.is_free_pixel(pts[i, j, :-1].astype(np.float64)).all()


def test_noise_is_seeded_and_clipped():
    grid = synthetic_grid()
    cfg = LidarConfig(num_beams=16, range_noise_std=2.0)
    lidar = Lidar(grid, cfg)
    poses = random_free_poses(grid, 10, 1)
    a = lidar.scan(poses, np.random.default_rng(4))
    b = lidar.scan(poses, np.random.default_rng(4))
    np.testing.assert_array_equal(a.ranges, b.ranges)
    exact, hit = lidar.cast(poses)
    assert np.all(a.ranges[hit] >= 0) and np.all(a.ranges[hit] <= lidar.range_max)
    assert 0.5 < np.std(a.ranges[hit] - exact[hit]) < 4.0


def test_config_angles_and_validation():
    full = LidarConfig(num_beams=4)
    np.testing.assert_allclose(full.angles(), [-math.pi, -math.pi / 2, 0, math.pi / 2])
    part = LidarConfig(num_beams=3, fov=math.pi)
    np.testing.assert_allclose(part.angles(), [-math.pi / 2, 0, math.pi / 2])
    grid = synthetic_grid()
    assert LidarConfig().range_max(grid) == pytest.approx(0.2 * 160)
    assert LidarConfig(max_range_px=33.0).range_max(grid) == 33.0
    for bad in ({'num_beams': 0}, {'fov': 7.0}, {'beam_samps': 1}, {'range_noise_std': -1.0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            LidarConfig(**bad)
    with pytest.raises(ValueError, match='backend'):
        Lidar(grid, backend='opencl')
    with pytest.raises(ValueError, match='numba'):
        Lidar(grid, device='cuda', backend='numba')
