"""
Turn floorplan images (CubiCasa5k scans or binary wall masks) into occupancy grids.

Two kinds of input:

* ``mask``: a binary wall mask as the DiNNO paper used (255 = wall/outside, 0 = free).
* ``scan``: a raw CubiCasa5k plan (``F1_scaled.png`` / ``F1_original.png``): grey or black walls
  drawn as thick strokes, plus thin text, door arcs, window lines and furniture symbols.

For scans, walls are the dark strokes that survive a morphological opening wider than text and
furniture strokes; the building footprint is every ink stroke (window lines included) closed over
small drawing gaps with the holes filled, so a robot cannot leave through a window or the entrance
door. For both kinds the result keeps only the largest connected free region (4-connected), marks
the image border and everything outside the building occupied, and flags the outside as unknown.
"""

from __future__ import annotations

from dataclasses import dataclass
import logging
from pathlib import Path

import cv2
from dinno_ros.core.world.grid import GridMap
import numpy as np

logger = logging.getLogger(__name__)

KINDS = ('auto', 'mask', 'scan')
DEFAULT_RESOLUTION = (
    0.015  # metres per pixel: CubiCasa5k plans are about 1-2 cm/px (doors 50-80 px wide)
)


@dataclass
class FloorplanConfig:
    """Parameters of the scan wall detector (pixel units of the input image)."""

    ink_threshold: int = 235  # grey level below which a (median-filtered) scan pixel is ink
    max_chroma: int = 60  # coloured pen marks (max - min channel above this) are never walls
    wall_kernel_px: int | None = (
        None  # opening diameter that removes thin strokes; None: from stroke widths
    )
    min_wall_area_frac: float = 2e-4  # drop wall blobs smaller than this share of the image
    gap_px: int | None = None  # closing diameter for the footprint; None: 2 x the thickest wall
    mask_threshold: int = 128  # mask pixels at or above this are walls (below with invert=True)
    invert: bool = False  # masks with 0 = wall and 255 = free
    border_px: int = 1  # image frame always occupied


def load_floorplan(
    image_path: str | Path,
    resolution: float = DEFAULT_RESOLUTION,
    kind: str = 'auto',
    config: FloorplanConfig | None = None,
    name: str | None = None,
) -> GridMap:
    """
    Load a floorplan image as a :class:`GridMap`.

    With ``resolution`` metres per pixel, origin (0, 0, 0).
    """
    if kind not in KINDS:
        raise ValueError(f'kind must be one of {list(KINDS)}, got {kind!r}')
    image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f'cannot read floorplan image {image_path}')
    grid = floorplan_to_grid(image[..., ::-1], resolution=resolution, kind=kind, config=config)
    grid.name = name or Path(image_path).stem
    return grid


def floorplan_to_grid(
    rgb: np.ndarray,
    resolution: float = DEFAULT_RESOLUTION,
    kind: str = 'auto',
    config: FloorplanConfig | None = None,
) -> GridMap:
    """Convert an RGB (H, W, 3) or grey (H, W) uint8 floorplan image into a :class:`GridMap`."""
    cfg = config or FloorplanConfig()
    if kind not in KINDS:
        raise ValueError(f'kind must be one of {list(KINDS)}, got {kind!r}')
    rgb = np.asarray(rgb, dtype=np.uint8)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    if kind == 'auto':
        kind = detect_kind(rgb)
        logger.info('floorplan kind detected: %s', kind)
    if kind == 'mask':
        grey = rgb.mean(axis=2)
        walls = grey < cfg.mask_threshold if cfg.invert else grey >= cfg.mask_threshold
        free = ~walls
    else:
        free = scan_free_space(rgb, cfg)
    free = largest_component(free)
    if cfg.border_px > 0:
        b = cfg.border_px
        free[:b, :] = free[-b:, :] = False
        free[:, :b] = free[:, -b:] = False
        free = largest_component(free)
    if not free.any():
        raise ValueError('floorplan has no free space after conversion')
    unknown = outside_of(free, radius_px=2 * typical_half_width(~free) + 2)
    logger.info(
        'floorplan: %dx%d px, free %.1f%%', free.shape[1], free.shape[0], 100 * free.mean()
    )
    return GridMap(occupied=~free, resolution=resolution, unknown=unknown)


def detect_kind(rgb: np.ndarray) -> str:
    """``mask`` when the image is (almost) purely black and white, else ``scan``."""
    grey = rgb.mean(axis=2)
    extreme = (grey <= 5) | (grey >= 250)
    chroma = rgb.max(axis=2).astype(np.int16) - rgb.min(axis=2)
    return 'mask' if extreme.mean() > 0.995 and (chroma > 10).mean() < 0.001 else 'scan'


def scan_free_space(rgb: np.ndarray, cfg: FloorplanConfig) -> np.ndarray:
    """Free space inside the building of a raw plan scan (before the largest-component step)."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    grey = cv2.medianBlur(grey, 3)
    chroma = rgb.max(axis=2).astype(np.int16) - rgb.min(axis=2)
    ink = (grey < cfg.ink_threshold) & (chroma <= cfg.max_chroma)
    ink = remove_small(ink, min_area=max(4, int(2e-5 * ink.size)))
    kernel_px = cfg.wall_kernel_px or stroke_kernel(ink)
    walls = open_disk(ink, kernel_px)
    walls = close_disk(walls, max(3, kernel_px // 2))  # mend scan noise inside grey wall fill
    walls = remove_small(walls, min_area=int(cfg.min_wall_area_frac * walls.size))
    half = estimate_wall_half_width(walls)
    gap_px = cfg.gap_px or max(5, 4 * half)
    footprint = fill_holes(close_disk(ink | walls, gap_px))
    logger.debug(
        'scan: stroke kernel %d px, wall half width %d px, gap %d px', kernel_px, half, gap_px
    )
    return footprint & ~walls


def stroke_kernel(ink: np.ndarray) -> int:
    """
    Return an opening diameter just wider than the common (thin) strokes.

    The thin strokes: text, arcs, furniture outlines.
    """
    return 2 * typical_half_width(ink) + 3


def typical_half_width(mask: np.ndarray) -> int:
    """Half width in pixels of the most common stroke (mode of the medial-axis distance)."""
    values = _ridge_distances(mask)
    if values.size == 0:
        return 1
    return max(1, int(np.bincount(np.round(values).astype(int)).argmax()))


def estimate_wall_half_width(walls: np.ndarray) -> int:
    """
    Half width in pixels of the thick strokes.

    The 95th percentile of the medial-axis distance.
    """
    values = _ridge_distances(walls)
    if values.size == 0:
        return 1
    return max(1, int(round(np.percentile(values, 95))))


def _ridge_distances(mask: np.ndarray) -> np.ndarray:
    """Distance-to-background values on the medial ridge of ``mask`` (stroke half widths)."""
    dt = cv2.distanceTransform(np.ascontiguousarray(mask, dtype=np.uint8), cv2.DIST_L2, 5)
    ridge = (dt >= cv2.dilate(dt, np.ones((3, 3), np.uint8))) & (dt > 0)
    return dt[ridge]


def outside_of(free: np.ndarray, radius_px: int) -> np.ndarray:
    """
    Cells more than ``radius_px`` beyond the building's free space.

    The outside (never free, unknown).
    """
    building = fill_holes(cv2.dilate(free.astype(np.uint8), disk(2 * radius_px + 1)) > 0)
    return ~building


def disk(diameter: int) -> np.ndarray:
    d = max(1, int(diameter))
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (d, d))


def open_disk(mask: np.ndarray, diameter: int) -> np.ndarray:
    return cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, disk(diameter)) > 0


def close_disk(mask: np.ndarray, diameter: int) -> np.ndarray:
    """
    Morphological closing that treats the outside of the image as empty.

    No border artefacts.
    """
    pad = int(diameter)
    padded = cv2.copyMakeBorder(
        mask.astype(np.uint8), pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0
    )
    closed = cv2.morphologyEx(padded, cv2.MORPH_CLOSE, disk(diameter))
    return closed[pad:-pad, pad:-pad] > 0


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """``mask`` plus every region not reachable from the image border through ``~mask``."""
    padded = cv2.copyMakeBorder((~mask).astype(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=1)
    n, labels = cv2.connectedComponents(padded, connectivity=4)
    outside = labels == labels[0, 0]
    return ~outside[1:-1, 1:-1]


def remove_small(mask: np.ndarray, min_area: int) -> np.ndarray:
    """Drop 8-connected blobs smaller than ``min_area`` pixels."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_area
    keep[0] = False
    return keep[labels]


def largest_component(free: np.ndarray) -> np.ndarray:
    """
    Return the largest 4-connected region of ``free``.

    Robots cannot squeeze through diagonal gaps.
    """
    n, labels, stats, _ = cv2.connectedComponentsWithStats(free.astype(np.uint8), connectivity=4)
    if n <= 1:
        return np.zeros_like(free, dtype=bool)
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return labels == biggest
