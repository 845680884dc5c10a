"""
The floorplan world a problem's robots drive through: map, lidar, routes, validation scans.

Shared by the lidar density problem and the MNIST problem's robots (which drive but learn digits).
Built from the ``map:``, ``lidar:``, ``routes:`` and ``validation:`` sections and (num_nodes,
seed); cached per process.
"""

from __future__ import annotations

from dataclasses import dataclass
import logging
import math
from pathlib import Path as FilePath

from dinno_ros.core.world.datasets import validation_scans
from dinno_ros.core.world.floorplan import DEFAULT_RESOLUTION, load_floorplan
from dinno_ros.core.world.grid import GridMap
from dinno_ros.core.world.lidar import Lidar, LidarConfig
from dinno_ros.core.world.map_io import load_map
from dinno_ros.core.world.mapgen import generate_floorplan
from dinno_ros.core.world.planner import plan_route
from dinno_ros.core.world.routes import random_route_set
import numpy as np

from .base import robot_seed
from ..schema import spec

logger = logging.getLogger(__name__)

MAP_GENERATORS = ('apartment', 'office')
END_MODES = ('pingpong', 'loop', 'stop')
VALIDATION_STREAM = 7  # random stream ids (see robot_seed) of the world's random draws
ROUTES_STREAM = 8
NOISE_STREAM = 1


@dataclass(frozen=True)
class MapSection:
    """The YAML ``map:`` section: a ROS map YAML, a floorplan image, or a generated plan."""

    path: str | None = (
        None  # map YAML (.yaml) or floorplan image (.png/.jpg); relative to the YAML's folder
    )
    resolution: float | None = spec(
        None, gt=0.0
    )  # metres per pixel of a floorplan image (map YAMLs carry theirs)
    kind: str = spec('auto', choices=('auto', 'mask', 'scan'))  # floorplan image kind
    generate: str | None = spec(None, choices=MAP_GENERATORS)  # a generated plan instead of a file
    generate_seed: int = 0  # generator seed
    size_m: list[float] | None = None  # generated plan size (width, height) metres

    def validate(self, section: str = 'map') -> None:
        if (self.path is None) == (self.generate is None):
            raise ValueError(
                f'{section}.path: give exactly one of map.path or map.generate '
                f'(allowed generators: {", ".join(MAP_GENERATORS)})'
            )
        if self.size_m is not None and len(self.size_m) != 2:
            raise ValueError(
                f'{section}.size_m: {self.size_m!r} not allowed; allowed: [width, height] metres'
            )


@dataclass(frozen=True)
class LidarSection:
    """The YAML ``lidar:`` section (the paper's: 20 beams, 25 samples per beam, length 0.2)."""

    num_beams: int = spec(20, min=1)
    beam_length: float = spec(0.2, gt=0.0)  # range_max as a fraction of max(H, W) pixels
    beam_samps: int = spec(25, min=2)  # training samples per beam
    fov: float = spec(2 * math.pi, gt=0.0, max=2 * math.pi + 1e-9)  # radians
    range_noise_std: float = spec(0.0, min=0.0)  # pixels
    samp_exponent: float = spec(1.0, gt=0.0)  # sample spacing exponent along a beam
    hit_depth: float = spec(
        0.5, min=0.0
    )  # pixels the hit sample is pushed into the wall it hit (see below)

    def lidar_config(self) -> LidarConfig:
        return LidarConfig(
            num_beams=self.num_beams,
            fov=self.fov,
            beam_length=self.beam_length,
            range_noise_std=self.range_noise_std,
            beam_samps=self.beam_samps,
            samp_exponent=self.samp_exponent,
        )


@dataclass(frozen=True)
class RoutesSection:
    """The YAML ``routes:`` section: each robot drives its own A* path through its waypoints."""

    overlap: str = spec(
        'some', choices=('tight', 'some', 'minimal')
    )  # how much the robots' routes share
    waypoints_per_robot: int = spec(4, min=1)
    speed: float = spec(0.5, gt=0.0)  # metres per second
    dt: float = spec(0.2, gt=0.0)  # simulated seconds per round
    robot_radius: float = spec(0.2, min=0.0)  # metres, for planning
    end_mode: str = spec('pingpong', choices=END_MODES)  # after the path's end
    min_spacing: float = spec(1.0, min=0.0)  # metres between one robot's random waypoints
    waypoints: list | None = (
        None  # explicit per-robot waypoints [[[x, y], ...], ...] metres (overrides random)
    )


@dataclass(frozen=True)
class ValidationSection:
    """The YAML ``validation:`` section."""

    num_scans: int = spec(500, min=1)  # random free poses of the whole map (paper: 500)


def push_hits_into_walls(
    points: np.ndarray, labels: np.ndarray, beam_samps: int, depth: float
) -> np.ndarray:
    """
    Move each beam's hit sample (its last, label 1) ``depth`` pixels further along the beam.

    The lidar puts the hit on the face of the first occupied cell, where free space ends; the seed
    labelled every sample by the map's occupancy there, so its hit samples lay inside walls. Half a
    pixel inside keeps the labels a function of position (1 in walls, 0 in free space) instead of
    asking the network for 1 exactly on the boundary (and 0 a hair before it). Points are ordered
    beam by beam, the first sample of a beam at the pose; returns a new array.
    """
    if depth <= 0:
        return points
    beams = np.asarray(points, dtype=np.float32).reshape(-1, beam_samps, 2).copy()
    hit = np.asarray(labels).reshape(-1, beam_samps)[:, -1] > 0.5
    d = beams[hit, -1] - beams[hit, 0]
    norm = np.linalg.norm(d, axis=1, keepdims=True)
    beams[hit, -1] += depth * d / np.where(norm > 0, norm, 1.0)
    return beams.reshape(-1, 2)


@dataclass
class World:
    grid: GridMap
    lidar: Lidar
    paths: list  # one planner Path per robot
    waypoints: list  # per robot [[x, y], ...] metres
    val_points: np.ndarray  # [M, 2] float32 centred pixel units
    val_labels: np.ndarray  # [M] float32


def load_world_map(cfg: MapSection) -> GridMap:
    """Load the map of a ``map:`` section: a map YAML, a floorplan image or a generated plan."""
    if cfg.generate is not None:
        size = tuple(cfg.size_m) if cfg.size_m is not None else None
        return generate_floorplan(
            cfg.generate, seed=cfg.generate_seed, size_m=size, resolution=cfg.resolution or 0.05
        )
    path = FilePath(cfg.path)
    if not path.is_file():
        raise FileNotFoundError(f'experiment.map.path: {path} does not exist')
    if path.suffix.lower() in ('.yaml', '.yml'):
        return load_map(path)
    return load_floorplan(path, resolution=cfg.resolution or DEFAULT_RESOLUTION, kind=cfg.kind)


_WORLDS: dict[str, World] = {}


def build_world(
    map_cfg: MapSection,
    lidar_cfg: LidarSection,
    routes_cfg: RoutesSection,
    val_cfg: ValidationSection,
    num_nodes: int,
    seed: int,
) -> World:
    """
    Build the world of a lidar experiment.

    Cached per process: every pair and robot shares it.
    """
    key = repr((map_cfg, lidar_cfg, routes_cfg, val_cfg, int(num_nodes), int(seed)))
    if key not in _WORLDS:
        if len(_WORLDS) >= 4:
            _WORLDS.pop(next(iter(_WORLDS)))
        _WORLDS[key] = _build_world(
            map_cfg, lidar_cfg, routes_cfg, val_cfg, int(num_nodes), int(seed)
        )
    return _WORLDS[key]


def _build_world(map_cfg, lidar_cfg, routes_cfg, val_cfg, num_nodes, seed) -> World:
    grid = load_world_map(map_cfg)
    lidar = Lidar(grid, lidar_cfg.lidar_config())
    if routes_cfg.waypoints is not None:
        if len(routes_cfg.waypoints) != num_nodes:
            raise ValueError(
                f'experiment.routes.waypoints: {len(routes_cfg.waypoints)} routes for {num_nodes} '
                'robots'
            )
        waypoints = [[tuple(map(float, w)) for w in route] for route in routes_cfg.waypoints]
    else:
        waypoints = random_route_set(
            grid,
            num_nodes,
            routes_cfg.waypoints_per_robot,
            overlap=routes_cfg.overlap,
            seed=robot_seed(seed, -1, ROUTES_STREAM),
            robot_radius_m=routes_cfg.robot_radius,
            min_spacing_m=routes_cfg.min_spacing,
        )
    paths = [
        plan_route(
            grid,
            wps,
            robot_radius_m=routes_cfg.robot_radius,
            speed_m_s=routes_cfg.speed,
            end_mode=routes_cfg.end_mode,
        )
        for wps in waypoints
    ]
    val_points, val_labels, _ = validation_scans(
        grid, lidar, val_cfg.num_scans, seed=robot_seed(seed, -1, VALIDATION_STREAM)
    )
    val_points = push_hits_into_walls(
        val_points, val_labels, lidar_cfg.beam_samps, lidar_cfg.hit_depth
    )
    logger.info(
        'world %s: %dx%d px at %.3f m/px, %d routes, %d validation samples',
        grid.name,
        grid.width,
        grid.height,
        grid.resolution,
        len(paths),
        len(val_labels),
    )
    return World(
        grid,
        lidar,
        paths,
        [list(map(list, w)) for w in waypoints],
        np.asarray(val_points, dtype=np.float32),
        np.asarray(val_labels, dtype=np.float32),
    )
