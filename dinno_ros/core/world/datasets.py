"""
Data for learning the map.

A robot's online scan window, validation scans, ground truth, map quality.

All points are in the density network's centred pixel units ``(px - W/2, py - H/2)``; labels are
occupancy (0 free, 1 occupied) as float32.
"""

from __future__ import annotations

from dataclasses import replace
import logging
import math

from dinno_ros.core.world.grid import GridMap
from dinno_ros.core.world.lidar import Lidar, random_free_poses
import numba as nb
import numpy as np
import torch

logger = logging.getLogger(__name__)


class OnlineScanDataset:
    """
    A sliding window over a robot's last ``window`` scans (paper: 800).

    The scans are held in preallocated ring buffers. Every scan must bring the same number of
    samples (beams x samples per beam); the buffers are allocated on the first :meth:`add` and
    never reallocated.
    """

    def __init__(self, window: int = 800):
        if window < 1:
            raise ValueError(f'window must be >= 1, got {window}')
        self.window = window
        self.per_scan = 0
        self.num_added = 0  # scans added so far (the newest is scan num_added - 1)
        self._x: np.ndarray | None = None
        self._y: np.ndarray | None = None

    @property
    def num_scans(self) -> int:
        """Return the number of scans currently held (at most ``window``)."""
        return min(self.num_added, self.window)

    def __len__(self) -> int:
        """Return the number of samples currently held."""
        return self.num_scans * self.per_scan

    def add(self, points: np.ndarray, labels: np.ndarray) -> None:
        """
        Append one scan's samples ([M, 2] points, [M] labels).

        Drops the oldest scan when full.
        """
        points = np.asarray(points, dtype=np.float32).reshape(-1, 2)
        labels = np.asarray(labels, dtype=np.float32).reshape(-1)
        if len(points) != len(labels):
            raise ValueError(f'points ({len(points)}) and labels ({len(labels)}) differ in length')
        if self._x is None:
            if len(points) == 0:
                raise ValueError('a scan must bring at least one sample')
            self.per_scan = len(points)
            self._x = np.empty((self.window, self.per_scan, 2), dtype=np.float32)
            self._y = np.empty((self.window, self.per_scan), dtype=np.float32)
        elif len(points) != self.per_scan:
            raise ValueError(f'every scan must have {self.per_scan} samples, got {len(points)}')
        slot = self.num_added % self.window
        self._x[slot] = points
        self._y[slot] = labels
        self.num_added += 1

    def sample(
        self, batch_size: int, generator: torch.Generator | np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Draw a minibatch uniformly with replacement from the window.

        Returns (x [B, 2], y [B]) float32 tensors. Deterministic for a seeded generator (torch or
        numpy).
        """
        n = len(self)
        if n == 0:
            raise ValueError('the dataset is empty: add a scan first')
        if isinstance(generator, torch.Generator):
            idx = torch.randint(0, n, (batch_size,), generator=generator).numpy()
        elif isinstance(generator, np.random.Generator):
            idx = generator.integers(0, n, size=batch_size)
        else:
            raise ValueError(
                f'generator must be a torch.Generator or numpy Generator, got {type(generator)}'
            )
        x = self._x.reshape(-1, 2)[:n][idx]
        y = self._y.reshape(-1)[:n][idx]
        return torch.from_numpy(x), torch.from_numpy(y)

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every held sample, oldest scan first: (x [N, 2], y [N])."""
        k = self.num_scans
        if k == 0:
            return torch.zeros((0, 2)), torch.zeros(0)
        order = np.arange(self.num_added - k, self.num_added) % self.window
        return (
            torch.from_numpy(self._x[order].reshape(-1, 2).copy()),
            torch.from_numpy(self._y[order].reshape(-1).copy()),
        )


def validation_scans(
    grid: GridMap, lidar: Lidar, num_scans: int = 500, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """
    Sample ``num_scans`` scans from random free poses over the whole map (paper: 500).

    Returns points [M, 2], labels [M] and offsets [num_scans + 1] (scan k is
    ``offsets[k]:offsets[k+1]``).
    """
    rng = np.random.default_rng(seed)
    poses = random_free_poses(grid, num_scans, rng)
    points, labels = lidar.samples(poses, rng)
    per_scan = len(points) // num_scans
    offsets = np.arange(num_scans + 1, dtype=np.int64) * per_scan
    return points, labels, offsets


def occupancy_grid_truth(grid: GridMap, step_px: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """
    Query points on a regular grid and the true occupancy.

    The points are in centred pixel units, [h*w, 2], row-major; the occupancy is [h, w].
    Point (i, j) is the centre of image cell
    ``(i * step_px + step_px // 2, j * step_px + step_px // 2)``.
    """
    if step_px < 1:
        raise ValueError(f'step_px must be >= 1, got {step_px}')
    rows = np.arange(step_px // 2, grid.height, step_px)
    cols = np.arange(step_px // 2, grid.width, step_px)
    truth = grid.occupied[np.ix_(rows, cols)]
    py, px = np.meshgrid(rows + 0.5, cols + 0.5, indexing='ij')
    pts = np.column_stack([px.ravel() - grid.width / 2.0, py.ravel() - grid.height / 2.0]).astype(
        np.float32
    )
    return pts, truth


def map_quality(
    pred_prob_on_grid: np.ndarray | torch.Tensor,
    truth: np.ndarray,
    seen_mask: np.ndarray | None = None,
) -> dict[str, float]:
    """
    Accuracy and IoUs of a predicted map thresholded at 0.5, only inside ``seen_mask``.

    ``iou`` (= ``iou_occupied``) of the occupied class, ``iou_free`` of the free class, ``miou``
    their mean, and ``seen_fraction`` of the map inside the mask.
    """
    if isinstance(pred_prob_on_grid, torch.Tensor):
        pred_prob_on_grid = pred_prob_on_grid.detach().cpu().numpy()
    pred = np.asarray(pred_prob_on_grid).reshape(truth.shape) >= 0.5
    mask = (
        np.ones(truth.shape, dtype=bool)
        if seen_mask is None
        else np.asarray(seen_mask, dtype=bool)
    )
    if mask.shape != truth.shape:
        raise ValueError(f'seen_mask shape {mask.shape} differs from truth shape {truth.shape}')
    p, t = pred[mask], truth[mask].astype(bool)
    if p.size == 0:
        nan = float('nan')
        keys = ('accuracy', 'iou', 'iou_occupied', 'iou_free', 'miou')
        return {**dict.fromkeys(keys, nan), 'seen_fraction': 0.0}
    occupied, free = _iou(p, t), _iou(~p, ~t)
    return {
        'accuracy': float(np.mean(p == t)),
        'iou': occupied,
        'iou_occupied': occupied,
        'iou_free': free,
        'miou': 0.5 * (occupied + free),
        'seen_fraction': float(mask.mean()),
    }


def _iou(pred: np.ndarray, truth: np.ndarray) -> float:
    union = np.count_nonzero(pred | truth)
    return float(np.count_nonzero(pred & truth) / union) if union else 1.0


@nb.njit(cache=True)
def _mark_beams(seen, poses, points, hit, step_px, ds):
    """Mark the coarse cells along each beam (and the cell just past a hit, the wall seen)."""
    h, w = seen.shape
    for i in range(points.shape[0]):
        x0 = poses[i, 0]
        y0 = poses[i, 1]
        for j in range(points.shape[1]):
            dx = points[i, j, 0] - x0
            dy = points[i, j, 1] - y0
            length = math.sqrt(dx * dx + dy * dy)
            extra = 0.5 if hit[i, j] else 0.0
            n = int((length + extra) / ds) + 1
            ux = dx / length if length > 0 else 0.0
            uy = dy / length if length > 0 else 0.0
            for k in range(n + 1):
                t = min(k * ds, length + extra)
                r = int(math.floor((y0 + t * uy) / step_px))
                c = int(math.floor((x0 + t * ux) / step_px))
                if 0 <= r < h and 0 <= c < w:
                    seen[r, c] = True


class SeenMask:
    """
    The coarse cells (the :func:`occupancy_grid_truth` grid) any robot's lidar has seen.

    ``add(poses)`` casts ``num_beams`` beams (dense, independent of the robots' own beam count)
    from each pixel pose with the lidar's range and marks every cell along them up to and including
    the hit wall.
    """

    def __init__(self, grid: GridMap, lidar: Lidar, step_px: int = 4, num_beams: int = 720):
        self.step_px = step_px
        self.lidar = Lidar(
            grid,
            replace(
                lidar.cfg,
                num_beams=num_beams,
                range_noise_std=0.0,
                angle_min=None,
                fov=2 * math.pi,
            ),
            device=lidar.device,
            backend=lidar.backend,
        )
        rows = len(range(step_px // 2, grid.height, step_px))
        cols = len(range(step_px // 2, grid.width, step_px))
        self.mask = np.zeros((rows, cols), dtype=bool)

    def add(self, poses_px: np.ndarray) -> np.ndarray:
        """Mark what is visible from these pixel poses; returns the updated mask."""
        poses = np.atleast_2d(np.asarray(poses_px, dtype=np.float64))
        scan = self.lidar.scan(poses)
        ds = self.step_px / 2.0
        _mark_beams(
            self.mask, poses, scan.points.astype(np.float64), scan.hit, float(self.step_px), ds
        )
        return self.mask
