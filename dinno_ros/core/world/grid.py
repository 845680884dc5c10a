"""
The occupancy grid every other world module works on.

Conventions (the same as ROS map images and ``nav_msgs/OccupancyGrid``, except for row order):

* ``occupied[r, c]`` is a boolean image, row 0 at the *top* (as the PNG is stored).
* Pixel coordinates ``(px, py)`` are continuous: the centre of cell ``(r, c)`` is at
  ``px = c + 0.5, py = r + 0.5``; ``px`` grows to the right, ``py`` grows downwards.
* World coordinates ``(x, y)`` are metres in the ``map`` frame: ``x`` to the right, ``y`` upwards,
  with ``origin`` the world pose of the *lower-left* corner of the image (as in map_server YAML).
* The density network's input is "centred pixel units": ``(px - W/2, py - H/2)`` as in the paper.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class GridMap:
    """
    A boolean occupancy grid with a metric frame.

    ``occupied`` is True for walls and for everything outside the building (unknown counts as
    occupied).
    """

    occupied: np.ndarray
    resolution: float = 0.05  # metres per pixel
    origin: tuple[float, float, float] = (
        0.0,
        0.0,
        0.0,
    )  # world pose (x, y, yaw) of the lower-left corner
    name: str = 'map'
    unknown: np.ndarray | None = field(
        default=None, repr=False
    )  # optional mask of never-free outside space

    def __post_init__(self) -> None:
        occ = np.asarray(self.occupied)
        if occ.ndim != 2:
            raise ValueError(f'occupied must be a 2-D array, got shape {occ.shape}')
        self.occupied = np.ascontiguousarray(occ, dtype=bool)
        if not self.resolution > 0:
            raise ValueError(f'resolution must be > 0 metres per pixel, got {self.resolution}')

    @property
    def height(self) -> int:
        return int(self.occupied.shape[0])

    @property
    def width(self) -> int:
        return int(self.occupied.shape[1])

    @property
    def free(self) -> np.ndarray:
        return ~self.occupied

    def world_to_pixel(self, xy: np.ndarray) -> np.ndarray:
        """
        Metres in the map frame -> continuous pixel coordinates (px, py).

        Works on (..., 2) arrays.
        """
        xy = np.asarray(xy, dtype=np.float64)
        ox, oy, _ = self.origin
        px = (xy[..., 0] - ox) / self.resolution
        py = self.height - (xy[..., 1] - oy) / self.resolution
        return np.stack([px, py], axis=-1)

    def pixel_to_world(self, pxy: np.ndarray) -> np.ndarray:
        """
        Continuous pixel coordinates (px, py) -> metres in the map frame.

        Works on (..., 2) arrays.
        """
        pxy = np.asarray(pxy, dtype=np.float64)
        ox, oy, _ = self.origin
        x = ox + pxy[..., 0] * self.resolution
        y = oy + (self.height - pxy[..., 1]) * self.resolution
        return np.stack([x, y], axis=-1)

    def pixel_to_centred(self, pxy: np.ndarray) -> np.ndarray:
        """Pixel coordinates -> the density network's centred pixel units."""
        pxy = np.asarray(pxy, dtype=np.float64)
        return pxy - np.array([self.width / 2.0, self.height / 2.0])

    def is_free_pixel(self, pxy: np.ndarray) -> np.ndarray:
        """Return True where continuous pixel coordinates fall in a free cell inside the image."""
        pxy = np.asarray(pxy, dtype=np.float64)
        c = np.floor(pxy[..., 0]).astype(np.int64)
        r = np.floor(pxy[..., 1]).astype(np.int64)
        inside = (c >= 0) & (c < self.width) & (r >= 0) & (r < self.height)
        out = np.zeros(inside.shape, dtype=bool)
        out[inside] = ~self.occupied[r[inside], c[inside]]
        return out
