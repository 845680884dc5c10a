"""
The floorplan world a problem's robots drive through: map, lidar, routes, validation scans.

Shared by the lidar density problem and the MNIST problem's robots (which drive but learn digits).
A :class:`World` is built from the ``map:``, ``lidar:``, ``routes:`` and ``validation:`` sections
and (num_nodes, seed) by whoever needs it and passed on (a problem holds it as its ``data``); there
is no process-wide cache. Its paths and validation scans are computed on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
import logging
import math
from pathlib import Path as FilePath
import threading

from dinno_ros.core.world.datasets import validation_scans
from dinno_ros.core.world.floorplan import DEFAULT_RESOLUTION, load_floorplan
from dinno_ros.core.world.grid import GridMap
from dinno_ros.core.world.lidar import Lidar, LidarConfig
from dinno_ros.core.world.map_io import load_map
from dinno_ros.core.world.mapgen import generate_floorplan
from dinno_ros.core.world.planner import inflate, Path, plan_route
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

    The lidar puts the hit on the face of the first occupied cell, where free space ends; the
    research code labelled every sample by the map's occupancy there, so its hit samples lay inside
    walls. Half a pixel inside keeps the labels a function of position (1 in walls, 0 in free
    space) instead of asking the network for 1 exactly on the boundary (and 0 a hair before it).
    Points are ordered beam by beam, the first sample of a beam at the pose; returns a new array.
    """
    if depth <= 0:
        return points
    beams = np.asarray(points, dtype=np.float32).reshape(-1, beam_samps, 2).copy()
    hit = np.asarray(labels).reshape(-1, beam_samps)[:, -1] > 0.5
    d = beams[hit, -1] - beams[hit, 0]
    norm = np.linalg.norm(d, axis=1, keepdims=True)
    beams[hit, -1] += depth * d / np.where(norm > 0, norm, 1.0)
    return beams.reshape(-1, 2)


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


class World:
    """
    The floorplan world of one experiment: map, lidar, the robots' routes and validation scans.

    Built once from the ``map:``, ``lidar:``, ``routes:`` and ``validation:`` sections and
    (num_nodes, seed), then passed to whoever needs it; there is no process-wide cache. The map,
    the lidar and every robot's waypoints (one route set, drawn jointly) are built here. The rest
    is computed on first use and kept on the instance: robot i's A* path by :meth:`path` (a robot
    process plans only its own), the validation scans by :attr:`val_points` /
    :attr:`val_labels`. ``validation`` may be None for a world nobody validates on (the MNIST
    robots' drive); its validation scans then raise.

    ``key`` is what the world was built from: two worlds with equal keys are identical.
    """

    def __init__(
        self,
        map_cfg: MapSection,
        lidar_cfg: LidarSection,
        routes_cfg: RoutesSection,
        val_cfg: ValidationSection | None,
        num_nodes: int,
        seed: int,
    ) -> None:
        num_nodes, seed = int(num_nodes), int(seed)
        self.lidar_cfg = lidar_cfg
        self.routes_cfg = routes_cfg
        self.val_cfg = val_cfg
        self.num_nodes = num_nodes
        self.seed = seed
        self.key = (map_cfg, lidar_cfg, routes_cfg, val_cfg, num_nodes, seed)
        self.grid: GridMap = load_world_map(map_cfg)
        self.lidar = Lidar(self.grid, lidar_cfg.lidar_config())
        self.waypoints: list = self._draw_waypoints()  # per robot [[x, y], ...] metres
        self._paths: dict[int, Path] = {}  # robot id -> its planned path, filled by path()
        self._free: np.ndarray | None = None  # the planner's inflated free space
        self._validation: tuple[np.ndarray, np.ndarray] | None = None
        self._lock = threading.RLock()
        logger.info(
            'world %s: %dx%d px at %.3f m/px, %d routes',
            self.grid.name,
            self.grid.width,
            self.grid.height,
            self.grid.resolution,
            len(self.waypoints),
        )

    def _draw_waypoints(self) -> list:
        routes = self.routes_cfg
        if routes.waypoints is not None:
            if len(routes.waypoints) != self.num_nodes:
                raise ValueError(
                    f'experiment.routes.waypoints: {len(routes.waypoints)} routes for '
                    f'{self.num_nodes} robots'
                )
            drawn = [[tuple(map(float, w)) for w in route] for route in routes.waypoints]
        else:
            drawn = random_route_set(
                self.grid,
                self.num_nodes,
                routes.waypoints_per_robot,
                overlap=routes.overlap,
                seed=robot_seed(self.seed, -1, ROUTES_STREAM),
                robot_radius_m=routes.robot_radius,
                min_spacing_m=routes.min_spacing,
            )
        return [list(map(list, w)) for w in drawn]

    def path(self, robot_id: int) -> Path:
        """
        Return robot ``robot_id``'s A* path through its waypoints.

        Planned on the first call for that robot, then kept; the other robots' paths are not
        planned.
        """
        robot_id = int(robot_id)
        if not 0 <= robot_id < self.num_nodes:
            raise ValueError(f'robot_id {robot_id} out of range; allowed: 0..{self.num_nodes - 1}')
        with self._lock:
            if robot_id not in self._paths:
                routes = self.routes_cfg
                if self._free is None:
                    self._free = inflate(self.grid, routes.robot_radius)
                path = plan_route(
                    self.grid,
                    self.waypoints[robot_id],
                    robot_radius_m=routes.robot_radius,
                    speed_m_s=routes.speed,
                    end_mode=routes.end_mode,
                    free_mask=self._free,
                )
                logger.info(
                    'world %s: robot %d route planned, %d points',
                    self.grid.name,
                    robot_id,
                    len(path.xy),
                )
                self._paths[robot_id] = path
            return self._paths[robot_id]

    @property
    def paths(self) -> list[Path]:
        """Return every robot's path (plans those not planned yet)."""
        return [self.path(i) for i in range(self.num_nodes)]

    @property
    def planned_robots(self) -> tuple[int, ...]:
        """Return the robots whose paths have been planned so far."""
        return tuple(sorted(self._paths))

    @property
    def has_validation(self) -> bool:
        """Return whether the validation scans have been rendered yet."""
        return self._validation is not None

    @property
    def val_points(self) -> np.ndarray:
        """Return the validation samples, [M, 2] float32 centred pixel units (built once)."""
        return self._validation_scans()[0]

    @property
    def val_labels(self) -> np.ndarray:
        """Return the validation labels, [M] float32 (built once)."""
        return self._validation_scans()[1]

    def _validation_scans(self) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            if self._validation is None:
                if self.val_cfg is None:
                    raise RuntimeError(
                        f'world {self.grid.name}: built without a validation section, so it has '
                        'no validation scans'
                    )
                lidar_cfg = self.lidar_cfg
                points, labels, _ = validation_scans(
                    self.grid,
                    self.lidar,
                    self.val_cfg.num_scans,
                    seed=robot_seed(self.seed, -1, VALIDATION_STREAM),
                )
                points = push_hits_into_walls(
                    points, labels, lidar_cfg.beam_samps, lidar_cfg.hit_depth
                )
                self._validation = (
                    np.asarray(points, dtype=np.float32),
                    np.asarray(labels, dtype=np.float32),
                )
                logger.info(
                    'world %s: %d validation samples from %d scans',
                    self.grid.name,
                    len(labels),
                    self.val_cfg.num_scans,
                )
            return self._validation
