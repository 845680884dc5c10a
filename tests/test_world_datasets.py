"""
Datasets.

The online scan window, validation scans, ground-truth occupancy, seen area, map quality.
"""

from __future__ import annotations

from dinno_ros.core.world.datasets import (
    map_quality,
    occupancy_grid_truth,
    OnlineScanDataset,
    SeenMask,
    validation_scans,
)
from dinno_ros.core.world.grid import GridMap
from dinno_ros.core.world.lidar import Lidar, LidarConfig
import numpy as np
import pytest
import torch


def small_grid() -> GridMap:
    occ = np.zeros((80, 120), dtype=bool)
    occ[:3], occ[-3:], occ[:, :3], occ[:, -3:] = True, True, True, True
    occ[:, 60:62] = True
    occ[30:45, 60:62] = False
    return GridMap(occ, resolution=0.05)


def fake_scan(k: int, m: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Scan number k: every point equals (k, k) so the window contents are easy to read."""
    return np.full((m, 2), k, dtype=np.float32), np.full(m, k % 2, dtype=np.float32)


def test_window_keeps_the_last_scans_without_reallocating():
    ds = OnlineScanDataset(window=3)
    assert len(ds) == 0
    with pytest.raises(ValueError, match='empty'):
        ds.sample(4, torch.Generator().manual_seed(0))
    ds.add(*fake_scan(0))
    buf = ds._x
    for k in range(1, 5):
        ds.add(*fake_scan(k))
    assert ds._x is buf  # the ring buffer is reused
    assert len(ds) == 3 * 6 and ds.num_scans == 3 and ds.num_added == 5
    x, y = ds.tensors()
    np.testing.assert_array_equal(x[:, 0].numpy(), np.repeat([2, 3, 4], 6))
    xb, yb = ds.sample(500, torch.Generator().manual_seed(1))
    assert xb.shape == (500, 2) and yb.shape == (500,) and xb.dtype == torch.float32
    assert set(np.unique(xb[:, 0].numpy())) == {2.0, 3.0, 4.0}
    np.testing.assert_array_equal(yb.numpy(), xb[:, 0].numpy() % 2)
    with pytest.raises(ValueError, match='6 samples'):
        ds.add(*fake_scan(9, m=5))


def test_partial_window_samples_only_added_scans():
    ds = OnlineScanDataset(window=10)
    ds.add(*fake_scan(7))
    ds.add(*fake_scan(8))
    xb, _ = ds.sample(200, np.random.default_rng(0))
    assert set(np.unique(xb[:, 0].numpy())) == {7.0, 8.0}


def test_sampling_is_deterministic_for_seeded_generators():
    ds = OnlineScanDataset(window=4)
    rng = np.random.default_rng(0)
    for _ in range(6):
        ds.add(rng.normal(size=(10, 2)), rng.integers(0, 2, 10))
    a = ds.sample(64, torch.Generator().manual_seed(3))
    b = ds.sample(64, torch.Generator().manual_seed(3))
    c = ds.sample(64, np.random.default_rng(3))
    d = ds.sample(64, np.random.default_rng(3))
    for u, v in ((a, b), (c, d)):
        torch.testing.assert_close(u[0], v[0])
        torch.testing.assert_close(u[1], v[1])
    with pytest.raises(ValueError, match='generator'):
        ds.sample(4, 3)


def test_validation_scans_shape_and_labels():
    grid = small_grid()
    lidar = Lidar(grid, LidarConfig(num_beams=20, beam_samps=25))
    pts, labels, offsets = validation_scans(grid, lidar, num_scans=50, seed=0)
    assert pts.shape == (50 * 20 * 25, 2) and labels.shape == (50 * 20 * 25,)
    assert offsets[0] == 0 and offsets[-1] == len(pts) and len(offsets) == 51
    assert set(np.unique(labels)) <= {0.0, 1.0} and labels.sum() > 0
    # centred pixel units: inside [-W/2, W/2] x [-H/2, H/2]
    assert np.all(np.abs(pts[:, 0]) <= grid.width / 2 + 1e-3)
    assert np.all(np.abs(pts[:, 1]) <= grid.height / 2 + 1e-3)
    # labels 0 lie in free cells
    free_pts = pts[labels == 0] + np.array([grid.width / 2, grid.height / 2], dtype=np.float32)
    assert grid.is_free_pixel(free_pts.astype(np.float64)).mean() > 0.999
    p2, l2, _ = validation_scans(grid, lidar, num_scans=50, seed=0)
    np.testing.assert_array_equal(pts, p2)


def test_truth_grid_and_map_quality():
    grid = small_grid()
    pts, truth = occupancy_grid_truth(grid, step_px=4)
    assert truth.shape == (20, 30) and pts.shape == (600, 2)
    np.testing.assert_allclose(pts[0], [2.5 - 60, 2.5 - 40])
    assert truth[0, 0] and not truth[5, 5]
    perfect = map_quality(truth.astype(float), truth)
    assert perfect['accuracy'] == 1.0 and perfect['iou'] == 1.0
    assert perfect['miou'] == perfect['iou_free'] == 1.0
    empty = map_quality(np.zeros(truth.shape), truth)
    assert empty['iou'] == 0.0 and 0 < empty['accuracy'] < 1
    free = 1.0 - truth.mean()  # all free: the free class's IoU is the free fraction
    assert empty['iou_free'] == pytest.approx(free) and empty['miou'] == pytest.approx(free / 2)
    seen = np.zeros(truth.shape, dtype=bool)
    seen[5:10, 5:10] = True  # free only: a map of all zeros is perfect there
    assert map_quality(torch.zeros(600), truth, seen)['accuracy'] == 1.0


def test_seen_mask_covers_the_visible_room_only():
    grid = small_grid()
    lidar = Lidar(grid, LidarConfig(num_beams=20, max_range_px=200.0))
    seen = SeenMask(grid, lidar, step_px=4)
    mask = seen.add(np.array([[20.0, 20.0, 0.0]]))  # in the left room, door at rows 30..45
    _, truth = occupancy_grid_truth(grid, step_px=4)
    left = np.zeros_like(mask)
    left[1:19, 1:15] = True
    assert mask[left].mean() > 0.95  # the whole left room
    assert mask[:, 0].any()  # the walls it sees
    assert not mask[1:6, 17:29].any()  # the top of the right room is hidden (the door is lower)
    assert mask[12:16, 20:29].any()  # seen through the door
    q = map_quality(truth.astype(float), truth, mask)
    assert q['accuracy'] == 1.0 and 0 < q['seen_fraction'] < 1
