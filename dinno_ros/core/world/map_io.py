"""
Read and write ROS map_server maps: a YAML file next to a PGM/PNG image.

The YAML keys and their meaning follow nav2 ``map_server`` (and ROS 1 ``map_server``):

* ``image``: image path, relative to the YAML file unless absolute.
* ``resolution``: metres per pixel.
* ``origin``: ``[x, y, yaw]`` world pose of the lower-left pixel corner.
* ``negate``: 0 means white = free / black = occupied; 1 swaps them.
* ``occupied_thresh`` / ``free_thresh``: a pixel's occupancy ``p`` (``1 - shade`` or ``shade`` when
  negated, ``shade`` = mean of the colour channels in [0, 1]) is occupied when
  ``p > occupied_thresh``, free when ``p < free_thresh``, unknown otherwise.
* ``mode``: ``trinary`` (the rule above), ``scale`` (values in between are graded occupancy, a
  transparent alpha pixel is unknown), ``raw`` (the pixel value *is* the occupancy 0..100, above
  100 means unknown).

A :class:`GridMap` is boolean: free or occupied.  Unknown cells are occupied and also flagged in
``GridMap.unknown`` so that they survive a save/load round trip (written as grey 205 in trinary
mode).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import cv2
from dinno_ros.core.world.grid import GridMap
import numpy as np
import yaml

logger = logging.getLogger(__name__)

MODES = ('trinary', 'scale', 'raw')
IMAGE_FORMATS = ('png', 'pgm')
REQUIRED_KEYS = ('image', 'resolution', 'origin')
KNOWN_KEYS = REQUIRED_KEYS + ('negate', 'occupied_thresh', 'free_thresh', 'mode')
DEFAULT_OCCUPIED_THRESH = 0.65
DEFAULT_FREE_THRESH = 0.196  # ROS default: grey 205 (p = 0.19608) stays unknown
FREE_VALUE, OCCUPIED_VALUE, UNKNOWN_VALUE = 254, 0, 205  # map_saver trinary pixel values


def load_map(yaml_path: str | Path) -> GridMap:
    """Load a map_server YAML (and the image it names) into a :class:`GridMap`."""
    yaml_path = Path(yaml_path)
    with open(yaml_path, encoding='utf-8') as f:
        meta = yaml.safe_load(f)
    params = parse_map_yaml(meta, source=str(yaml_path))
    image_path = Path(params['image'])
    if not image_path.is_absolute():
        image_path = yaml_path.parent / image_path
    image = read_map_image(image_path)
    occupied, unknown = classify_pixels(image, params)
    return GridMap(
        occupied=occupied,
        resolution=params['resolution'],
        origin=params['origin'],
        name=yaml_path.stem,
        unknown=unknown if unknown.any() else None,
    )


def parse_map_yaml(meta: object, source: str = 'map YAML') -> dict:
    """
    Validate map_server YAML content; returns typed parameters.

    Raises ValueError naming the key.
    """
    if not isinstance(meta, dict):
        raise ValueError(
            f'{source}: expected a mapping with keys {list(KNOWN_KEYS)}, got {type(meta).__name__}'
        )
    for key in REQUIRED_KEYS:
        if key not in meta:
            raise ValueError(f"{source}: missing required key '{key}'")
    extra = sorted(set(meta) - set(KNOWN_KEYS))
    if extra:
        logger.warning('%s: ignoring unknown keys %s', source, extra)

    image = meta['image']
    if not isinstance(image, str) or not image:
        raise ValueError(f"{source}: key 'image' must be a non-empty path string, got {image!r}")
    resolution = _number(meta['resolution'], 'resolution', source)
    if not resolution > 0:
        raise ValueError(
            f"{source}: key 'resolution' must be > 0 metres per pixel, got {resolution}"
        )
    origin = meta['origin']
    if not isinstance(origin, (list, tuple)) or len(origin) != 3:
        raise ValueError(f"{source}: key 'origin' must be a list [x, y, yaw], got {origin!r}")
    origin = tuple(_number(v, 'origin', source) for v in origin)
    negate = meta.get('negate', 0)
    if negate not in (0, 1) or isinstance(negate, float):
        raise ValueError(f"{source}: key 'negate' must be 0 or 1, got {negate!r}")
    occ_t = _number(
        meta.get('occupied_thresh', DEFAULT_OCCUPIED_THRESH), 'occupied_thresh', source
    )
    free_t = _number(meta.get('free_thresh', DEFAULT_FREE_THRESH), 'free_thresh', source)
    if not 0.0 <= occ_t <= 1.0:
        raise ValueError(f"{source}: key 'occupied_thresh' must be in [0, 1], got {occ_t}")
    if not 0.0 <= free_t <= occ_t:
        raise ValueError(
            f"{source}: key 'free_thresh' must be in [0, occupied_thresh={occ_t}], got {free_t}"
        )
    mode = meta.get('mode', 'trinary')
    if mode not in MODES:
        raise ValueError(f"{source}: key 'mode' must be one of {list(MODES)}, got {mode!r}")
    return {
        'image': image,
        'resolution': resolution,
        'origin': origin,
        'negate': int(negate),
        'occupied_thresh': occ_t,
        'free_thresh': free_t,
        'mode': mode,
    }


def _number(value: object, key: str, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{source}: key '{key}' must be a finite number, got {value!r}")
    return float(value)


def read_map_image(image_path: str | Path) -> np.ndarray:
    """
    Read a map image as uint8.

    Shape (H, W) grey, (H, W, 3) colour or (H, W, 4) with alpha (RGB order).
    """
    image = cv2.imread(str(image_path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"key 'image': cannot read map image {image_path}")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    if image.dtype != np.uint8:
        raise ValueError(f"key 'image': unsupported pixel type {image.dtype} in {image_path}")
    if image.ndim == 3 and image.shape[2] == 3:
        image = image[..., ::-1]
    elif image.ndim == 3 and image.shape[2] == 4:
        image = image[..., [2, 1, 0, 3]]
    return np.ascontiguousarray(image)


def classify_pixels(image: np.ndarray, params: dict) -> tuple[np.ndarray, np.ndarray]:
    """
    Apply map_server's rules to an image.

    Returns boolean (occupied, unknown), unknown within occupied.
    """
    alpha = None
    if image.ndim == 3:
        if image.shape[2] == 4:
            alpha = image[..., 3]
            image = image[..., :3]
        value = image.astype(np.float64).mean(axis=2)
    else:
        value = image.astype(np.float64)
    mode = params['mode']
    if mode == 'raw':
        free = value < params['free_thresh'] * 100.0
        unknown = value > 100.0
    else:
        shade = value / 255.0
        p = shade if params['negate'] else 1.0 - shade
        free = p < params['free_thresh']
        if mode == 'trinary':
            unknown = ~free & ~(p > params['occupied_thresh'])
        else:  # scale: graded cells are occupied, transparent cells unknown
            unknown = np.zeros(value.shape, dtype=bool)
        if mode == 'scale' and alpha is not None:
            unknown = alpha < 255
            free &= ~unknown
    return ~free, unknown


def save_map(
    grid: GridMap,
    yaml_path: str | Path,
    image_format: str = 'png',
) -> Path:
    """
    Write ``grid`` as a trinary map_server map: ``yaml_path`` plus an image with the same stem.

    Free = 254, occupied = 0, unknown = 205 (as nav2 map_saver writes them). Returns the image
    path.
    """
    if image_format not in IMAGE_FORMATS:
        raise ValueError(
            f'image_format must be one of {list(IMAGE_FORMATS)}, got {image_format!r}'
        )
    yaml_path = Path(yaml_path)
    yaml_path.parent.mkdir(parents=True, exist_ok=True)
    image_path = yaml_path.with_suffix('.' + image_format)
    if not cv2.imwrite(str(image_path), map_image(grid)):
        raise OSError(f'could not write map image {image_path}')
    meta = {
        'image': image_path.name,
        'mode': 'trinary',
        'resolution': float(grid.resolution),
        'origin': [float(v) for v in grid.origin],
        'negate': 0,
        'occupied_thresh': DEFAULT_OCCUPIED_THRESH,
        'free_thresh': DEFAULT_FREE_THRESH,
    }
    with open(yaml_path, 'w', encoding='utf-8') as f:
        yaml.safe_dump(meta, f, sort_keys=False, default_flow_style=None)
    logger.info(
        'wrote map %s (%dx%d px, %.3f m/px)', yaml_path, grid.width, grid.height, grid.resolution
    )
    return image_path


def map_image(grid: GridMap) -> np.ndarray:
    """Return the trinary uint8 image of a grid (254 free, 0 occupied, 205 unknown)."""
    image = np.full(grid.occupied.shape, FREE_VALUE, dtype=np.uint8)
    image[grid.occupied] = OCCUPIED_VALUE
    if grid.unknown is not None:
        stray = grid.unknown & ~grid.occupied
        if stray.any():
            logger.warning(
                '%d unknown cells are not occupied; they are saved as unknown (occupied)',
                stray.sum(),
            )
        image[grid.unknown] = UNKNOWN_VALUE
    return image
